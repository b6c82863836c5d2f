"""`ttc serve` driven by the official `openai` Python client against an in-process server on a free port (the
scripted engine, tests/fakes.py): chat and completions, `n`, `seed`, streaming, and every refusal as the API's error
with its status, nothing generated and nothing written."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from backend.cli import main
from backend.ledger import decode_flops, prefill_flops
from backend.serving.http import API_KEY_ENV, make_server
from backend.serving.policy import content_version, write_policy
from backend.serving.runtime import Backend, Runtime, ServedTask
from store import Store
from tests.fakes import FAKE_MODEL, GEN_ARCH, FakeTask, ScriptedEngine, ScriptedVerifier
from tests.unit.test_serving import _policy

BUDGET = {"ttc_budget_flops": 3e7}
HARD = [{"role": "user", "content": "a hard one"}]


def _reply(prompt: str, params) -> str:
    """A sample that depends on its seed (its answer and its length), so seeds are seen in answers and usage."""
    return f"Answer: {params.seed % 7}" + " ok" * (params.seed % 3)


def _score(step: str) -> float:
    digits = re.findall(r"\d", step)
    return int(digits[0]) / 7 if digits else 0.0


def _backend(context_tokens: int | None = None) -> Backend:
    verifier = ScriptedVerifier(fn=_score)
    return Backend(FAKE_MODEL, ScriptedEngine([], default=_reply), verifier, ServedTask(FakeTask()), context_tokens)


@contextlib.contextmanager
def _serving(tmp_path: Path, backend: Backend | None = None):
    store = Store.open(tmp_path / "store")
    runtime = Runtime(_policy(), backend or _backend(), store)
    srv = make_server(runtime, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", store, runtime
    finally:
        srv.shutdown()
        srv.server_close()


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120)


@pytest.fixture
def served(tmp_path):
    with _serving(tmp_path) as (url, store, runtime):
        yield _client(url), store, runtime


def _stored_usage(store: Store, run_id: str) -> tuple[int, int, float]:
    nodes = store.query("SELECT * FROM nodes WHERE run_id = ?", [run_id])
    calls = nodes[nodes["kind"] != "root"]
    prompt = int(calls["prompt_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_prompt_tokens"])
    completion = int(calls["completion_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_completion_tokens"])
    return prompt, completion, float((nodes["generator_flops"] + nodes["verifier_flops"].fillna(0)).sum())


def _runs(store: Store) -> int:
    return int(store.query("SELECT count(*) AS n FROM runs")["n"].iloc[0])


def _chat(client: openai.OpenAI, seed: int = 1, **kw):
    return client.chat.completions.create(model="scripted", messages=HARD, seed=seed, extra_body=BUDGET, **kw)


def _complete(client: openai.OpenAI, seed: int = 1, **kw):
    return client.completions.create(model="scripted", prompt="a hard one", seed=seed, extra_body=BUDGET, **kw)


def test_chat_and_completion_answer_the_same_question_alike(served):
    client, store, _ = served
    chat, comp = _chat(client), _complete(client)
    assert chat.object == "chat.completion" and comp.object == "text_completion"
    assert comp.choices[0].text == chat.choices[0].message.content != ""
    assert (
        comp.usage == chat.usage and comp.usage.total_tokens == comp.usage.prompt_tokens + comp.usage.completion_tokens
    )
    for r in (chat, comp):
        ext = r.model_extra["ttc"]
        prompt, completion, flops = _stored_usage(store, ext["run_id"])
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
        assert ext["flops"] == pytest.approx(flops) and ext["flops"] <= BUDGET["ttc_budget_flops"]
    endpoints = [json.loads(s)["served"]["endpoint"] for s in store.query("SELECT spec_json FROM runs")["spec_json"]]
    assert sorted(endpoints) == ["messages", "prompt"]


def test_n_choices_are_the_answers_of_seeds_seed_plus_i_with_usage_summed(served):
    client, store, _ = served
    many = _chat(client, seed=4, n=3)
    singles = [_chat(client, seed=4 + i) for i in range(3)]
    assert [c.index for c in many.choices] == [0, 1, 2]
    for c, one in zip(many.choices, singles):
        assert c.message.content == one.choices[0].message.content
        assert c.model_extra["ttc"] == one.choices[0].model_extra["ttc"]  # seed, bin, configuration, flops, samples
    assert len({c.message.content for c in many.choices}) > 1  # independent draws: these seeds answer differently
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(many.usage, field) == sum(getattr(s.usage, field) for s in singles)
    ext = many.model_extra["ttc"]
    assert ext["flops"] == pytest.approx(sum(s.model_extra["ttc"]["flops"] for s in singles))
    assert ext["samples"] == sum(s.model_extra["ttc"]["samples"] for s in singles)
    assert _stored_usage(store, ext["run_id"])[:2] == (many.usage.prompt_tokens, many.usage.completion_tokens)
    nodes = store.query("SELECT config FROM nodes WHERE run_id = ?", [ext["run_id"]])
    assert sorted({json.loads(c)["choice"] for c in nodes["config"]}) == [0, 1, 2]


def test_same_seed_same_answer_and_usage_another_seed_another_draw(served):
    client, _, _ = served
    a, b, c = _complete(client, seed=5), _complete(client, seed=5), _complete(client, seed=6)
    assert a.choices == b.choices and a.usage == b.usage and a.id != b.id
    assert (c.choices[0].text, c.usage) != (a.choices[0].text, a.usage)


def test_without_a_seed_each_request_draws_afresh_and_returns_the_seed_that_reproduces_it(served):
    """OpenAI's API samples afresh when no seed is sent; the server says which seed it drew (`ttc.seed`)."""
    client, _, _ = served
    drawn = [_complete(client, seed=None) for _ in range(3)]
    seeds = [r.model_extra["ttc"]["seed"] for r in drawn]
    assert len(set(seeds)) == 3, seeds  # 1 in ~10^9 to collide
    again = _complete(client, seed=seeds[0])
    assert again.choices == drawn[0].choices and again.usage == drawn[0].usage


def test_chat_stream_sends_the_selected_answer_then_usage(served):
    client, _, _ = served
    full = _chat(client, seed=2)
    chunks = list(_chat(client, seed=2, stream=True, stream_options={"include_usage": True}))
    assert {ch.object for ch in chunks} == {"chat.completion.chunk"} and len({ch.id for ch in chunks}) == 1
    body, last = chunks[:-1], chunks[-1]
    assert body[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in body) == full.choices[0].message.content
    assert len(body) > 3  # the answer went out in pieces
    assert [ch.choices[0].finish_reason for ch in body] == [None] * (len(body) - 1) + [full.choices[0].finish_reason]
    assert body[-1].choices[0].model_extra["ttc"] == full.choices[0].model_extra["ttc"]
    assert all(ch.usage is None for ch in body) and last.choices == [] and last.usage == full.usage
    drop = lambda ext: {k: v for k, v in ext.items() if k != "run_id"}  # noqa: E731
    assert drop(last.model_extra["ttc"]) == drop(full.model_extra["ttc"])


def test_chat_stream_of_n_choices_without_usage(served):
    client, _, _ = served
    full = _chat(client, seed=3, n=2)
    chunks = list(_chat(client, seed=3, n=2, stream=True))
    texts = {0: "", 1: ""}
    for ch in chunks:
        texts[ch.choices[0].index] += ch.choices[0].delta.content or ""
    assert texts == {c.index: c.message.content for c in full.choices}
    assert (
        all(ch.usage is None for ch in chunks)
        and chunks[-1].model_extra["ttc"]["samples"] == (full.model_extra["ttc"]["samples"])
    )


def test_completion_stream(served):
    client, _, _ = served
    full = _complete(client, seed=2)
    chunks = list(_complete(client, seed=2, stream=True, stream_options={"include_usage": True}))
    assert {ch.object for ch in chunks} == {"text_completion"}
    assert "".join(ch.choices[0].text for ch in chunks[:-1]) == full.choices[0].text
    assert chunks[-2].choices[0].finish_reason == full.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage


def test_stream_is_server_sent_events_ending_with_done(served):
    client, _, _ = served
    body = {"model": "scripted", "prompt": "a hard one", "stream": True, **BUDGET}
    req = urllib.request.Request(f"{client.base_url}completions", json.dumps(body).encode())
    with urllib.request.urlopen(req) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: {") and "\n" not in e for e in events[:-2])


def _refused(client: openai.OpenAI, call: str) -> None:
    if call == "unknown field":
        client.chat.completions.create(model="scripted", messages=HARD, temperature=0.5)
    elif call == "budget":
        client.completions.create(
            model="scripted", prompt="x", extra_body={"ttc_budget_flops": 5.5e6}
        )  # above the reserve
    elif call == "model":
        client.chat.completions.create(model="gpt-4", messages=HARD)
    elif call == "prompt list":
        client.completions.create(model="scripted", prompt=["a", "b"])
    elif call == "n":
        client.chat.completions.create(model="scripted", messages=HARD, n=17)
    elif call == "stream_options":
        client.chat.completions.create(model="scripted", messages=HARD, stream_options={"include_usage": True})
    elif call == "route":
        client.embeddings.create(model="scripted", input="x")


@pytest.mark.parametrize(
    "call, error, param, code, message",
    [
        ("unknown field", openai.BadRequestError, "temperature", None, "temperature: unknown field"),
        ("budget", openai.BadRequestError, "ttc_budget_flops", None, "is below this request's minimum"),
        ("model", openai.NotFoundError, "model", "model_not_found", "'gpt-4' is not served here"),
        ("prompt list", openai.BadRequestError, "prompt", None, "prompt: Input should be a valid string"),
        ("n", openai.BadRequestError, "n", None, "n: Input should be less than or equal to 16"),
        ("stream_options", openai.BadRequestError, "stream_options", None, "only allowed when stream is true"),
        ("route", openai.NotFoundError, None, "not_found", "no route POST /v1/embeddings"),
    ],
)
def test_refusals_are_openai_errors_and_run_nothing(served, call, error, param, code, message):
    client, store, runtime = served
    with pytest.raises(error) as info:
        _refused(client, call)
    e = info.value
    assert (e.param, e.code, e.type) == (param, code, "invalid_request_error") and message in e.body["message"]
    assert runtime.backend.engine.calls == [] and _runs(store) == 0


def test_the_minimum_budget_is_one_scored_pilot_sample_plus_the_reserve(served):
    """The minimum, priced from the pricing rules by hand (backend/pricing.py: a sample is its prompt's prefill and
    max_tokens of decode; the scripted verifier's pass over the sample with the search's token margin of 8): a budget
    just under it is refused before any generation; at it, the pilot draws the one sample it affords."""
    client, store, runtime = served
    policy, verifier = runtime.policy, runtime.backend.verifier
    prompt_tokens = len("Q: x\nA:")  # FakeTask's few-shot prompt, one token per character
    m = policy.predictor.max_tokens
    sample = float(prefill_flops(GEN_ARCH, prompt_tokens)) + float(decode_flops(GEN_ARCH, prompt_tokens, m))
    reserve = max(b.cells[0].budget_flops for b in policy.bins)
    minimum = reserve + sample + verifier.estimate_flops(prompt_tokens, m + 8, 1)
    with pytest.raises(openai.BadRequestError, match=re.escape(f"allowed: at least {minimum:.4g} FLOPs")):
        client.completions.create(model="scripted", prompt="x", extra_body={"ttc_budget_flops": minimum * 0.999})
    assert runtime.backend.engine.calls == [] and _runs(store) == 0
    out = client.completions.create(model="scripted", prompt="x", extra_body={"ttc_budget_flops": minimum * 1.0001})
    nodes = store.query("SELECT config, kind FROM nodes WHERE run_id = ?", [out.model_extra["ttc"]["run_id"]])
    pilot = nodes[(nodes["config"].map(lambda c: json.loads(c)["served"]) == "pilot") & (nodes["kind"] != "root")]
    assert len(pilot) == 1 < policy.predictor.pilot_samples
    assert out.model_extra["ttc"]["flops"] <= minimum * 1.0001


def test_a_prompt_beyond_the_context_is_refused_before_generation(tmp_path):
    with _serving(tmp_path, _backend(context_tokens=40)) as (url, store, runtime):
        client = _client(url)
        long = "y" * 30  # "Q: " + 30 + "\nA:" = 36 prompt tokens + 16 completion tokens > 40
        with pytest.raises(openai.BadRequestError) as chat:
            client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": long}])
        with pytest.raises(openai.BadRequestError) as comp:
            client.completions.create(model="scripted", prompt=long)
        assert (chat.value.param, comp.value.param) == ("messages", "prompt")
        assert chat.value.code == comp.value.code == "context_length_exceeded"
        assert "the prompt is 36 tokens" in chat.value.body["message"] and "at most 24 tokens" in comp.value.message
        assert runtime.backend.engine.calls == [] and _runs(store) == 0
        assert client.completions.create(model="scripted", prompt="y" * 10).choices[0].text  # 30 tokens fit


def test_api_key_required_and_never_logged_nor_stored(tmp_path, monkeypatch, capfd):
    key = "sk-ttc-test-4f1c9a7e2b"
    monkeypatch.setenv(API_KEY_ENV, key)
    with _serving(tmp_path) as (url, store, runtime):
        for wrong in (f"{key}-wrong", "nope"):
            with pytest.raises(openai.AuthenticationError) as info:
                _chat(_client(url, wrong))
            assert info.value.code == "invalid_api_key"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/models")
        assert missing.value.code == 401
        assert runtime.backend.engine.calls == [] and _runs(store) == 0
        client = _client(url, key)
        assert [m.id for m in client.models.list()] == ["scripted"] and client.models.retrieve("scripted").id
        assert _chat(client).choices[0].message.content
        assert list(_complete(client, stream=True))
    logged = capfd.readouterr()
    assert "POST /v1/chat/completions" in logged.err and key not in logged.out + logged.err
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert files and not any(key.encode() in p.read_bytes() for p in files)


def _policy_file(tmp_path: Path, edit, rehash: bool) -> Path:
    path = tmp_path / "policy.json"
    write_policy(_policy(), path)
    data = json.loads(path.read_text())
    edit(data)
    if rehash:
        data["version"] = content_version(data)
    path.write_text(json.dumps(data))
    return path


def _swap_cells(data: dict) -> None:
    data["bins"][0]["cells"].reverse()


@pytest.mark.parametrize(
    "edit, rehash, where",
    [
        (lambda d: d["bins"][0]["cells"][0].update(surprise=1), False, "bins.0.cells.0.surprise: Extra inputs"),
        (lambda d: d["predictor"].update(pilot_samples=0), False, "predictor.pilot_samples: Input should be"),
        (lambda d: d["predictor"].update(thresholds=[0.5, 0.2]), True, "predictor.thresholds: 2 thresholds for 2"),
        (_swap_cells, True, "bins.0.cells: budgets [10000000.0, 3000000.0] do not increase"),
        (lambda d: d.update(verifier="other"), True, "predictor.verifier: 'scripted_verifier' is not the policy's"),
        (lambda d: d.update(model="another"), False, "does not match its version"),
        (lambda d: d.update(model="another"), True, "model: unknown model 'another'"),
    ],
)
def test_a_malformed_policy_stops_serve_at_start_with_one_line(tmp_path, capsys, edit, rehash, where):
    path = _policy_file(tmp_path, edit, rehash)
    code = main(["serve", "--policy", str(path), "--store", str(tmp_path / "served"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --policy: ") and where in err
    assert str(path) in err or "model" in where  # the file, or the model it names that this machine lacks
    assert not (tmp_path / "served").exists()
