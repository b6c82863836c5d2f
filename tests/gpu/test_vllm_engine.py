"""vLLM on CUDA, beyond what the vLLM tier (tests/vllm, which scripts/gpu-check.sh also runs on the GPU) checks:
architecture numbers read from a checkpoint, and a real process reward model. Skipped unless vllm imports and a
CUDA device is visible.

TTC_VLLM_TEST_MODEL picks the generator (default: the shipped default model's converted Hugging Face directory, so
no hub is needed; a hub id must be downloadable or cached); TTC_VLLM_TEST_PRM, when set (e.g.
Qwen/Qwen2.5-Math-PRM-7B), also exercises a real process-reward model."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.gpu

vllm = pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[gpu]')")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from backend.engines.base import Engine  # noqa: E402
from backend.engines.vllm_engine import VLLMEngine, VLLMRewardScorer  # noqa: E402
from backend.models.registry import DEFAULT_MODEL, SHIPPED_MODELS, prepare_hf  # noqa: E402

MODEL = os.environ.get("TTC_VLLM_TEST_MODEL") or str(prepare_hf(SHIPPED_MODELS[DEFAULT_MODEL]))


@pytest.fixture(scope="module")
def engine():
    eng = VLLMEngine(MODEL, n_ctx_per_slot=2048, gpu_memory_utilization=0.4)
    yield eng
    eng.close()


def test_arch_comes_from_the_checkpoint(engine):
    assert isinstance(engine, Engine)
    assert engine.name == MODEL
    a = engine.arch
    assert a.n_layers > 0 and a.d_model > 0 and a.vocab_size > 0
    assert a.n_params > a.n_layers * a.d_model * a.d_model  # at least the attention projections
    if MODEL in ("Qwen/Qwen2.5-0.5B-Instruct", str(prepare_hf(SHIPPED_MODELS[DEFAULT_MODEL]))):
        assert (a.n_layers, a.d_model, a.architecture) == (24, 896, "qwen2")
        assert 4.5e8 < a.n_params < 5.5e8  # 494M forward parameters (the output projection, not the lookup)


@pytest.mark.skipif(not os.environ.get("TTC_VLLM_TEST_PRM"), reason="set TTC_VLLM_TEST_PRM to a process reward model")
def test_process_reward_scorer_gives_one_reward_per_step():
    scorer = VLLMRewardScorer(os.environ["TTC_VLLM_TEST_PRM"], gpu_memory_utilization=0.5)  # beside the 0.4 above
    steps = ["Step 1: 2 + 3 = 5.", "Step 2: 5 * 2 = 10.", "Step 3: so the answer is 10."]
    prompt = (
        "<|im_start|>user\nWhat is (2 + 3) * 2?<|im_end|>\n<|im_start|>assistant\n"
        + "".join(s + "<extra_0>" for s in steps)
        + "<|im_end|><|endoftext|>"
    )
    [rewards] = scorer.score([prompt])
    assert len(rewards) == len(steps)
    assert all(0.0 <= r <= 1.0 for r in rewards)
