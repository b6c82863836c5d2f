"""The Engine contract on vLLM (in-process, CUDA). Skipped unless vllm imports and a CUDA device is visible;
scripts/gpu-check.sh runs it on a GPU machine.

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

from backend.engines.base import Engine, GenerationRequest, SamplingParams  # noqa: E402
from backend.engines.vllm_engine import VLLMEngine, VLLMRewardScorer  # noqa: E402
from backend.models.registry import DEFAULT_MODEL, SHIPPED_MODELS, prepare_hf  # noqa: E402

MODEL = os.environ.get("TTC_VLLM_TEST_MODEL") or str(prepare_hf(SHIPPED_MODELS[DEFAULT_MODEL]))
MAX_TOKENS = 24
LONG_PREFIX = "You are a careful assistant. " * 40  # well over vLLM's 16-token cache blocks


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
        assert 4.5e8 < a.n_params < 5.5e8  # 494M with tied embeddings


def test_batch_with_n_seeds_stop_and_logprobs(engine):
    params = SamplingParams(temperature=0.8, max_tokens=MAX_TOKENS, seed=100, stop=("\n",), logprobs=2)
    prompts = ["1, 2, 3, 4,", "The capital of France is", "def add(a, b):"]
    reqs = [GenerationRequest(p, params, n=3, tag=i) for i, p in enumerate(prompts)]
    done = []
    res = engine.generate(reqs, on_complete=lambda ri, req, comps: done.append((ri, req.tag, len(comps))))
    assert sorted(done) == [(0, 0, 3), (1, 1, 3), (2, 2, 3)]
    for comps in res:
        assert [c.seed for c in comps] == [100, 101, 102]
        for c in comps:
            assert "\n" not in c.text
            assert c.finish_reason in ("stop", "length")
            assert 1 <= c.completion_tokens <= MAX_TOKENS
            if c.finish_reason == "length":
                assert c.completion_tokens == MAX_TOKENS
            assert len(c.logprobs) == c.completion_tokens
            for t in c.logprobs:
                assert t.logprob <= 0.0 and 1 <= len(t.top) <= 2
    again = engine.generate(reqs)
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in res]  # seeded: reproducible


def test_greedy_n_is_split_and_identical(engine):
    req = GenerationRequest("Once upon a time", SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, seed=3), n=2)
    a, b = engine.generate([req])[0]
    assert a.text == b.text and (a.seed, b.seed) == (3, 4)


def test_prefix_cache_is_reused_and_reported(engine):
    p = SamplingParams(temperature=0.8, max_tokens=8, seed=1)
    first = engine.generate([GenerationRequest(LONG_PREFIX + "Question one?", p)])[0][0]
    second = engine.generate([GenerationRequest(LONG_PREFIX + "Question two?", p)])[0][0]
    assert first.prompt_tokens > 64
    assert second.cached_prompt_tokens >= 64  # the shared prefix, in whole cache blocks


def test_should_stop_before_start(engine):
    assert engine.generate([GenerationRequest("x", n=2)], should_stop=lambda: True) == [[None, None]]


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
