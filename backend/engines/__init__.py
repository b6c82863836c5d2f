"""Engines behind one `Engine` protocol (backend/engines/base.py), one registry. Built-ins register the same way a
plug-in would: a name and a factory `(model, engine_spec) -> Engine`."""

from __future__ import annotations

from collections.abc import Callable

from backend.engines.base import (
    Completion,
    Engine,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
)
from backend.errors import require


def _llamacpp(model, spec):
    from backend.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(model, n_parallel=spec.n_parallel, n_ctx_per_slot=spec.n_ctx_per_slot, threads=spec.threads)


def _openai(model, spec):
    from backend.engines.openai_compat import OpenAICompatEngine

    return OpenAICompatEngine(model, base_url=spec.base_url, n_parallel=spec.n_parallel)


def _vllm(model, spec):
    from backend.engines.vllm_engine import VLLMEngine

    # A Hugging Face id goes to vLLM as a string: it loads the model and reads its architecture and template.
    return VLLMEngine(model.name if model.is_hub_id else model, n_ctx_per_slot=spec.n_ctx_per_slot)


ENGINES: dict[str, Callable] = {"llamacpp": _llamacpp, "openai": _openai, "vllm": _vllm}


def create_engine(model, spec) -> Engine:
    return require(ENGINES, spec.kind, field="engine.kind", kind="engine")(model, spec)


__all__ = ["ENGINES", "Completion", "Engine", "GenerationRequest", "SamplingParams", "TokenLogprob", "create_engine"]
