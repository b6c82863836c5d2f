"""The Engine contract on real vLLM, in-process, on the converted default model: n, per-sample seeds, exact
sampling parameters, stop strings, logprobs, token counts, cached prompt tokens from vLLM's report, finish reasons,
latency, the chat template from the model directory, streaming callbacks, and stopping mid-batch."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here: ./scripts/test.sh runs this tier in .venv-vllm")

from backend.engines.base import Engine, GenerationRequest, SamplingParams
from backend.engines.vllm_engine import vllm_sampling_kwargs
from backend.models.registry import DEFAULT_MODEL, resolve_model

MAX_TOKENS = 24
LONG_PREFIX = "You are a careful assistant who answers briefly and checks every step. " * 24  # > 2 cache blocks


def test_loads_the_converted_model_with_the_gguf_numbers_and_template(vllm_engine, default_model):
    gguf = resolve_model(DEFAULT_MODEL)
    assert isinstance(vllm_engine, Engine)
    assert vllm_engine.name == DEFAULT_MODEL
    assert vllm_engine.arch == gguf.arch  # one price per token on both engines
    assert default_model.hf_source and default_model.hf_source.endswith(f"{DEFAULT_MODEL}-hf")
    assert vllm_engine.chat_template == gguf.chat_template  # the directory's template is the GGUF's


def test_batch_with_n_seeds_stop_logprobs_in_one_call(vllm_engine):
    params = SamplingParams(temperature=0.8, max_tokens=MAX_TOKENS, seed=100, stop=("\n",), logprobs=2)
    prompts = ["1, 2, 3, 4,", "The capital of France is", "def add(a, b):"]
    reqs = [GenerationRequest(p, params, n=3, tag=i) for i, p in enumerate(prompts)]
    done, calls = [], vllm_engine.calls
    res = vllm_engine.generate(reqs, on_complete=lambda ri, req, comps: done.append((ri, req.tag, len(comps))))
    assert vllm_engine.calls == calls + 1  # the whole batch is one submission
    assert sorted(done) == [(0, 0, 3), (1, 1, 3), (2, 2, 3)]
    for prompt, comps in zip(prompts, res):
        assert [c.seed for c in comps] == [100, 101, 102]
        for c in comps:
            assert "\n" not in c.text
            assert c.finish_reason in ("stop", "length")
            assert 1 <= c.completion_tokens <= MAX_TOKENS
            if c.finish_reason == "length":
                assert c.completion_tokens == MAX_TOKENS
            assert c.prompt_tokens == vllm_engine.count_tokens(prompt)
            assert c.latency_s > 0
            assert len(c.logprobs) == c.completion_tokens
            for t in c.logprobs:
                assert t.logprob <= 0.0 and 1 <= len(t.top) <= 2
    again = vllm_engine.generate(reqs)
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in res]  # seeded: reproducible


def test_a_sample_depends_on_its_seed_only(vllm_engine):
    """Sample i of a request with seed s is the sample of a lone request with seed s + i: results do not depend on
    how the batch was made, so a resumed run regenerates exactly what is missing."""
    p = SamplingParams(temperature=1.0, max_tokens=16, seed=7)
    together = vllm_engine.generate([GenerationRequest("Name a colour:", p, n=3)])[0]
    alone = vllm_engine.generate(
        [GenerationRequest("Name a colour:", SamplingParams(temperature=1.0, max_tokens=16, seed=9))]
    )[0][0]
    assert together[2].text == alone.text and together[2].seed == alone.seed == 9


def test_sampling_parameters_reach_vllm_exactly_with_no_truncation():
    from vllm import SamplingParams as VSamplingParams

    sp = VSamplingParams(**vllm_sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, max_tokens=33), 1, 5))
    assert (sp.temperature, sp.top_p, sp.max_tokens, sp.seed) == (0.7, 0.9, 33, 5)
    assert sp.top_k in (0, -1) and sp.min_p == 0.0  # the whole distribution: no top-k / min-p nobody asked for
    assert sp.repetition_penalty == 1.0 and sp.presence_penalty == 0.0 and sp.frequency_penalty == 0.0


def test_greedy_n_is_split_and_identical(vllm_engine):
    req = GenerationRequest("Once upon a time", SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, seed=3), n=2)
    a, b = vllm_engine.generate([req])[0]
    assert a.text == b.text and (a.seed, b.seed) == (3, 4)


def test_prefix_cache_is_reused_and_reported(vllm_engine):
    p = SamplingParams(temperature=0.8, max_tokens=8, seed=1)
    first = vllm_engine.generate([GenerationRequest(LONG_PREFIX + "Question one?", p)])[0][0]
    second = vllm_engine.generate([GenerationRequest(LONG_PREFIX + "Question two?", p)])[0][0]
    assert first.prompt_tokens > 256
    assert second.cached_prompt_tokens >= 128  # the shared prefix, in whole cache blocks
    assert second.cached_prompt_tokens < second.prompt_tokens


def test_callbacks_stream_and_should_stop_aborts_the_rest(vllm_engine):
    """on_complete fires per request as it finishes (the worker writes samples while the batch runs); once
    should_stop turns true the unfinished requests are aborted and their entries stay None."""
    short = SamplingParams(temperature=0.8, max_tokens=2, seed=1)
    long = SamplingParams(temperature=0.8, max_tokens=400, seed=2, stop=())
    reqs = [GenerationRequest("Say hi.", short)] + [GenerationRequest("Tell a long story:", long, n=2)]
    stop = threading.Event()
    seen = []

    def on_complete(ri, req, comps):
        seen.append(ri)
        stop.set()

    res = vllm_engine.generate(reqs, on_complete=on_complete, should_stop=stop.is_set)
    assert seen == [0]
    assert res[0][0] is not None and res[1] == [None, None]
    # the engine is usable afterwards: nothing aborted is left behind in vLLM
    assert not vllm_engine.llm.llm_engine.has_unfinished_requests()
    assert vllm_engine.generate([GenerationRequest("Say hi.", short)])[0][0] is not None


def test_should_stop_before_start(vllm_engine):
    calls = vllm_engine.calls
    assert vllm_engine.generate([GenerationRequest("x", n=2)], should_stop=lambda: True) == [[None, None]]
    assert vllm_engine.calls == calls


@pytest.mark.parametrize("bad", [{"n_ctx_per_slot": 10**7}])
def test_a_bad_load_is_one_clear_line(default_model, bad):
    from backend.engines.vllm_engine import VLLMEngine
    from backend.errors import EngineError

    with pytest.raises(EngineError) as e:
        VLLMEngine(default_model, kv_cache_gib=0.25, **bad)
    assert str(e.value).startswith(f"{DEFAULT_MODEL}: vLLM could not load ") and "\n" not in str(e.value)
