"""Engine response parsing without a server or a GPU: OpenAI-shaped choices (llama.cpp and `vllm serve`), and the
vLLM in-process output mapping, driven with stand-ins shaped like vllm.outputs (0.33) and a fake `vllm` module."""

from __future__ import annotations

import json
import struct
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend.engines.base import Engine, GenerationRequest, SamplingParams
from backend.engines.llamacpp import parse_choice
from backend.engines.vllm_engine import (
    VLLMEngine,
    arch_from_model_config,
    forward_params,
    map_logprobs,
    map_request_output,
    plan_batch,
    request_latency,
    safetensors_shapes,
    step_rewards,
    vllm_sampling_kwargs,
)
from backend.errors import EngineError
from backend.ledger import ModelArch
from backend.models.registry import ResolvedModel

# ---- OpenAI-shaped choices ---------------------------------------------------------------------------------------

LLAMACPP_CHOICE = {
    "text": " the capital",
    "index": 0,
    "finish_reason": "length",
    "logprobs": {
        "content": [
            {
                "id": 506,
                "token": " the",
                "logprob": -1.59,
                "top_logprobs": [
                    {"id": 506, "token": " the", "logprob": -1.59},
                    {"id": 496, "token": " a", "logprob": -2.29},
                ],
            },
            {
                "id": 5279,
                "token": " capital",
                "logprob": -0.65,
                "top_logprobs": [
                    {"id": 5279, "token": " capital", "logprob": -0.65},
                    {"id": 1346, "token": " most", "logprob": -2.72},
                ],
            },
        ]
    },
}
LLAMACPP_USAGE = {"prompt_tokens": 6, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 5}}

# `vllm serve` /v1/completions: the legacy OpenAI logprobs object
VLLM_SERVE_CHOICE = {
    "index": 0,
    "text": " Paris.",
    "logprobs": {
        "text_offset": [0, 6],
        "token_logprobs": [-0.12, -0.9],
        "tokens": [" Paris", "."],
        "top_logprobs": [{" Paris": -0.12, " the": -2.5}, {".": -0.9, ",": -1.1}],
    },
    "finish_reason": "stop",
    "stop_reason": "\n",
}
VLLM_SERVE_USAGE = {"prompt_tokens": 5, "total_tokens": 8, "completion_tokens": 3, "prompt_tokens_details": None}


def test_parse_llamacpp_choice():
    c = parse_choice(LLAMACPP_CHOICE, LLAMACPP_USAGE, 0.5, seed=3, want_logprobs=True)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.cached_prompt_tokens, c.finish_reason, c.seed) == (
        " the capital",
        6,
        2,
        5,
        "length",
        3,
    )
    assert [(t.token, t.logprob) for t in c.logprobs] == [(" the", -1.59), (" capital", -0.65)]
    assert c.logprobs[1].top == {" capital": -0.65, " most": -2.72}
    assert c.logprob_sum == pytest.approx(-2.24)


def test_parse_vllm_serve_legacy_logprobs():
    c = parse_choice(VLLM_SERVE_CHOICE, VLLM_SERVE_USAGE, 0.1, seed=None, want_logprobs=True)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.cached_prompt_tokens, c.finish_reason) == (
        " Paris.",
        5,
        3,
        0,
        "stop",
    )
    assert [(t.token, t.logprob, t.top) for t in c.logprobs] == [
        (" Paris", -0.12, {" Paris": -0.12, " the": -2.5}),
        (".", -0.9, {".": -0.9, ",": -1.1}),
    ]


def test_parse_legacy_logprobs_with_a_null_entry_and_no_tops():
    choice = {"text": "x", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [None, -1.0], "top_logprobs": None}}
    c = parse_choice(choice, {}, 0.0, None, True)
    assert [(t.token, t.logprob, t.top) for t in c.logprobs] == [("a", 0.0, {}), ("b", -1.0, {})]
    assert (c.prompt_tokens, c.completion_tokens, c.finish_reason) == (0, 0, "stop")


def test_parse_without_logprobs_requested_ignores_them():
    assert parse_choice(LLAMACPP_CHOICE, LLAMACPP_USAGE, 0.0, None, want_logprobs=False).logprobs is None
    assert parse_choice({"text": "y"}, {}, 0.0, None, want_logprobs=True).logprobs == []


# ---- vLLM in-process: stand-ins shaped like vllm.outputs / vllm.logprobs --------------------------------------------


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class Stats:
    queued_ts: float = 0.0
    last_token_ts: float = 0.0


@dataclass
class RequestOutput:
    request_id: str
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = True
    metrics: Stats | None = None
    num_cached_tokens: int | None = None


def test_sampling_kwargs():
    p = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=64, seed=5, stop=("\n\n",), logprobs=0)
    assert vllm_sampling_kwargs(p, 4, 5) == {
        "n": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 5,
        "stop": ["\n\n"],
        "logprobs": 1,
    }
    assert vllm_sampling_kwargs(SamplingParams(), 1, None) == {
        "n": 1,
        "temperature": 0.8,
        "top_p": 1.0,
        "max_tokens": 256,
        "seed": None,
    }


def test_plan_splits_only_greedy_requests_with_n_above_one():
    reqs = [
        GenerationRequest("a", SamplingParams(temperature=0.8, seed=10), n=3),
        GenerationRequest("b", SamplingParams(temperature=0.0, seed=20), n=3),
        GenerationRequest("c", SamplingParams(temperature=0.0), n=1),
        GenerationRequest("d", SamplingParams(temperature=0.0), n=2),
        GenerationRequest("e", SamplingParams(), n=0),
    ]
    assert plan_batch(reqs) == [
        (0, 0, 3, 10),
        (1, 0, 1, 20),
        (1, 1, 1, 21),
        (1, 2, 1, 22),
        (2, 0, 1, None),
        (3, 0, 1, None),
        (3, 1, 1, None),
    ]


def _request_output():
    # completion 1 listed first: the mapping orders by index; token 9 was sampled outside the top 2
    lp = lambda v, r, t: Logprob(v, r, t)  # noqa: E731
    return RequestOutput(
        request_id="0",
        prompt="Q",
        prompt_token_ids=[1, 2, 3, 4],
        num_cached_tokens=3,
        metrics=Stats(queued_ts=100.0, last_token_ts=101.5),
        outputs=[
            CompletionOutput(
                1,
                "xy",
                [7, 9],
                -4.0,
                [
                    {7: lp(-0.1, 1, "x"), 8: lp(-2.5, 2, "z")},
                    {9: lp(-3.9, 5, "y"), 7: lp(-0.5, 1, "x"), 8: lp(-1.0, 2, "z")},
                ],
                "length",
            ),
            CompletionOutput(0, "x", [7], -0.1, [{7: lp(-0.1, 1, "x"), 8: lp(-2.5, 2, "z")}], "stop", "\n"),
        ],
    )


def test_map_request_output_orders_by_index_and_seeds_children():
    comps = map_request_output(_request_output(), first_seed=40, logprobs_k=2, latency_s=1.5)
    assert [(c.text, c.seed, c.completion_tokens, c.finish_reason) for c in comps] == [
        ("x", 40, 1, "stop"),
        ("xy", 41, 2, "length"),
    ]
    assert all((c.prompt_tokens, c.cached_prompt_tokens, c.latency_s) == (4, 3, 1.5) for c in comps)
    second = comps[1].logprobs
    assert [(t.token, t.logprob) for t in second] == [("x", -0.1), ("y", -3.9)]
    assert second[1].top == {"x": -0.5, "z": -1.0}  # the sampled token ranked 5th: not among the top 2
    assert second[0].top == {"x": -0.1, "z": -2.5}
    assert comps[1].logprob_sum == pytest.approx(-4.0)  # agrees with vLLM's cumulative_logprob


def test_map_request_output_without_logprobs_or_seed_or_cache_info():
    ro = _request_output()
    ro.num_cached_tokens = None
    comps = map_request_output(ro, first_seed=None, logprobs_k=None, latency_s=0.2)
    assert [(c.seed, c.logprobs, c.cached_prompt_tokens) for c in comps] == [(None, None, 0), (None, None, 0)]


def test_map_logprobs_tolerates_missing_positions_and_ranks():
    out = map_logprobs([5, 6], [None, {6: Logprob(-0.3), 2: Logprob(-1.2, None, "b")}], k=1)
    assert [(t.token, t.logprob, t.top) for t in out] == [("5", float("-inf"), {}), ("6", -0.3, {"6": -0.3})]


def test_request_latency_prefers_engine_timestamps():
    assert request_latency(_request_output(), 9.0) == pytest.approx(1.5)
    assert request_latency(RequestOutput("1", "", [], [], metrics=None), 9.0) == 9.0


class FakeTensor:
    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return self.rows


def test_step_rewards():
    assert step_rewards(FakeTensor([[0.9, 0.1], [0.2, 0.8]])) == [0.1, 0.8]
    assert step_rewards([[0.3, 0.7]], positive_label=0) == [0.3]
    assert step_rewards(FakeTensor([0.5, -1.0])) == [0.5, -1.0]  # one-label head: a value per token
    assert step_rewards([[2.0]]) == [2.0]


# ---- parameter counting from safetensors headers ------------------------------------------------------------------


def _write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


TIED = {"model.embed_tokens.weight": [100, 8], "model.layers.0.mlp.up_proj.weight": [16, 8], "model.norm.weight": [8]}


def test_forward_params_follows_the_ledger_rule(tmp_path):
    _write_safetensors(tmp_path / "model-00001-of-00002.safetensors", TIED)
    _write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"lm_head.weight": [100, 8]})
    shapes = safetensors_shapes(sorted(tmp_path.glob("*.safetensors")))
    assert shapes["lm_head.weight"] == [100, 8]
    assert forward_params(shapes) == 128 + 8 + 800  # untied: drop the lookup, keep the projection
    assert forward_params(TIED) == 800 + 128 + 8  # tied: the lookup is the projection


@dataclass
class FakeModelConfig:
    model: str
    hf_config: object = field(
        default_factory=lambda: types.SimpleNamespace(
            model_type="qwen2", max_position_embeddings=32768, num_attention_heads=14
        )
    )
    revision: str | None = None

    def get_total_num_hidden_layers(self):
        return 24

    def get_hidden_size(self):
        return 896

    def get_vocab_size(self):
        return 151936


def test_arch_from_model_config_reads_a_local_checkpoint(tmp_path):
    _write_safetensors(tmp_path / "model.safetensors", TIED)
    arch = arch_from_model_config(FakeModelConfig(str(tmp_path)))
    assert arch == ModelArch(
        n_params=936, n_layers=24, d_model=896, n_ctx_train=32768, vocab_size=151936, architecture="qwen2", d_attn=896
    )
    # config.json's head_dim, where it is not hidden_size / num_attention_heads (Gemma 3: 4 heads of 256)
    gemma = types.SimpleNamespace(model_type="gemma3_text", max_position_embeddings=32768, num_attention_heads=4)
    gemma.head_dim = 256
    assert arch_from_model_config(FakeModelConfig(str(tmp_path), hf_config=gemma)).d_attn == 1024
    no_heads = types.SimpleNamespace(model_type="x", max_position_embeddings=8)
    with pytest.raises(EngineError, match="no num_attention_heads"):
        arch_from_model_config(FakeModelConfig(str(tmp_path), hf_config=no_heads))
    with pytest.raises(EngineError, match="no safetensors checkpoint found"):
        arch_from_model_config(FakeModelConfig(str(tmp_path / "empty")))


# ---- VLLMEngine with a fake `vllm` module: batching, n, seeds, callbacks ----------------------------------------


class FakeEngineCore:
    """Emulates `LLM.llm_engine` after `LLM.enqueue`: each `step()` finishes one queued request (internal ids
    carry vLLM's `-<8 characters>` suffix, outputs the external id)."""

    def __init__(self):
        self.queue, self.aborted, self.model_config = [], [], None

    def has_unfinished_requests(self):
        return bool(self.queue)

    def step(self):
        return [self.queue.pop(0)] if self.queue else []

    def abort_request(self, ids, internal=False):
        assert internal
        self.aborted.extend(ids)
        self.queue.clear()


class FakeLLM:
    """Emulates vllm.LLM.enqueue for n children seeded seed+i; records every submission."""

    def __init__(self, model, seed=0, **kwargs):
        self.model, self.seed, self.kwargs, self.calls = model, seed, kwargs, []
        self.llm_engine = FakeEngineCore()

    def enqueue(self, prompts, params, use_tqdm=True):
        self.calls.append((list(prompts), list(params)))
        ids = []
        for i, (prompt, p) in enumerate(zip(prompts, params)):
            if p["temperature"] < 1e-5 and p["n"] > 1:
                raise ValueError(f"n must be 1 when using greedy sampling, got {p['n']}.")
            children = [
                CompletionOutput(
                    j,
                    f"{prompt}|{None if p['seed'] is None else p['seed'] + j}",
                    [1, 2],
                    -1.0,
                    [{1: Logprob(-0.5, 1, "a")}, {2: Logprob(-0.5, 1, "b")}],
                    "length",
                )
                for j in range(p["n"])
            ]
            self.llm_engine.queue.append(
                RequestOutput(str(i), prompt, [0] * len(prompt), children, num_cached_tokens=0)
            )
            ids.append(f"{i}-abcdefgh")
        return ids


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.__version__ = "0.33.0"
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


ARCH = ModelArch(n_params=1, n_layers=1, d_model=1)


def test_vllm_engine_sends_the_whole_batch_in_one_generate_call(fake_vllm):
    eng = VLLMEngine("Qwen/Qwen2.5-0.5B-Instruct", n_ctx_per_slot=1024, arch=ARCH, gpu_memory_utilization=0.5)
    assert isinstance(eng, Engine)
    assert eng.llm.kwargs == {"enable_prefix_caching": True, "max_model_len": 1024, "gpu_memory_utilization": 0.5}
    assert eng.calls == 0
    reqs = [
        GenerationRequest("p", SamplingParams(temperature=0.8, seed=10, logprobs=1), n=3, tag="q0"),
        GenerationRequest("g", SamplingParams(temperature=0.0, seed=5), n=2, tag="q1"),
    ]
    seen = []
    res = eng.generate(reqs, on_complete=lambda ri, req, comps: seen.append((ri, req.tag, [c.text for c in comps])))
    assert len(eng.llm.calls) == 1 and eng.llm.calls[0][0] == ["p", "g", "g"] and eng.calls == 1
    assert [[c.text for c in r] for r in res] == [["p|10", "p|11", "p|12"], ["g|5", "g|6"]]
    assert [[c.seed for c in r] for r in res] == [[10, 11, 12], [5, 6]]
    assert seen == [(0, "q0", ["p|10", "p|11", "p|12"]), (1, "q1", ["g|5", "g|6"])]
    assert res[0][0].logprobs[0].token == "a" and res[1][0].logprobs is None
    assert res[0][0].completion_tokens == 2 and res[0][0].prompt_tokens == 1


def test_vllm_engine_should_stop_before_start_and_errors(fake_vllm):
    eng = VLLMEngine("m", arch=ARCH)
    assert eng.generate([GenerationRequest("p", n=2)], should_stop=lambda: True) == [[None, None]]
    assert eng.llm.calls == []
    eng.llm.enqueue = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CUDA out of memory\nmore"))
    with pytest.raises(EngineError, match=r"^m: vLLM generation failed: CUDA out of memory$"):
        eng.generate([GenerationRequest("p")])


def test_vllm_engine_streams_callbacks_and_aborts_the_rest_on_stop(fake_vllm):
    eng = VLLMEngine("m", arch=ARCH)
    seen = []
    reqs = [GenerationRequest(p, SamplingParams(seed=1)) for p in "abc"]
    res = eng.generate(reqs, on_complete=lambda ri, req, comps: seen.append(ri), should_stop=lambda: len(seen) >= 1)
    assert seen == [0] and res[0][0].text == "a|1" and res[1:] == [[None], [None]]
    assert eng.llm.llm_engine.aborted == ["0-abcdefgh", "1-abcdefgh", "2-abcdefgh"]


def test_external_id_strips_the_random_suffix_only():
    from backend.engines.vllm_engine import external_id

    assert [external_id(i) for i in ("12-a1b2c3d4", "12", "x-y-12345678", "7-short")] == ["12", "12", "x-y", "7-short"]


def test_vllm_engine_refuses_gguf_without_a_gguf_loader(fake_vllm, tmp_path):
    model = ResolvedModel("gemma-3-270m", tmp_path / "gemma-3-270m.gguf", ARCH, "few_shot", None)
    with pytest.raises(EngineError, match=r"^gemma-3-270m: vLLM 0.33.0 has no GGUF loader"):
        VLLMEngine(model)


def test_vllm_engine_without_vllm_installed_is_a_clean_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(EngineError, match="vllm is not installed"):
        VLLMEngine("m")


def test_vllm_factory_hands_hub_ids_over_as_strings(monkeypatch):
    """The registry's hub-id models reach vLLM as the id itself (vLLM 0.33 cannot load GGUF)."""
    import backend.engines.vllm_engine as vllm_engine
    from backend.engines import VLLMOptions, create_engine
    from backend.models.registry import resolve_model

    seen = {}

    class Recorder:
        def __init__(self, model, n_ctx_per_slot, **kwargs):
            seen.update(model=model, n_ctx=n_ctx_per_slot)

    monkeypatch.setattr(vllm_engine, "VLLMEngine", Recorder)
    create_engine(resolve_model("Qwen/Qwen2.5-0.5B-Instruct", hub_ok=True), VLLMOptions(n_ctx_per_slot=4096))
    assert seen == {"model": "Qwen/Qwen2.5-0.5B-Instruct", "n_ctx": 4096}
