"""`ttc serve` under concurrent requests and the ways a request gives its budget, on the scripted engine
(tests/fakes.py): 32 requests at mixed budgets sent at once answer exactly as the same requests sent one by one
(nothing a request decides is shared), requests are admitted first come first served, and the budget comes from the
body, the `X-TTC-Budget` header or the server's default, in FLOPs or in samples priced by the one pricing rule."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.cli import main
from backend.engines.base import GenerationRequest
from backend.ledger import decode_flops, prefill_flops
from backend.serving.runtime import Admission, Budget, Runtime
from tests.conftest import ROOT, wait_until
from tests.fakes import GEN_ARCH, ScriptedEngine
from tests.unit.test_serving import _policy
from tests.unit.test_serving_openai import _backend, _runs, _serving

QUESTIONS = ["a hard one", "What is 2+2?", "three", "a long question about eleven things"]
BUDGETS: list[dict] = [
    {"ttc_budget_flops": 1e7},
    {"ttc_budget_flops": 1.6e7},
    {"ttc_budget_flops": 3e7},
    {"ttc_budget_samples": 40},
    {},
]


class Together(ScriptedEngine):
    """Holds each request's first `generate` until `together` requests are inside the engine at once, so the
    requests' engine calls interleave (a condition, not a hope about timing)."""

    def __init__(self, together: int, **kw):
        super().__init__([], **kw)
        self.barrier = threading.Barrier(together, timeout=60)
        self.local = threading.local()
        self.in_flight = self.most = 0
        self.count = threading.Lock()

    def generate(self, requests: list[GenerationRequest], on_complete=None, should_stop=None):
        first = not getattr(self.local, "started", False)
        self.local.started = True
        with self.count:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            if first:
                self.barrier.wait()
            return super().generate(requests, on_complete, should_stop)
        finally:
            with self.count:
                self.in_flight -= 1


def _post(url: str, body: dict, headers: dict | None = None, path: str = "chat/completions") -> tuple[int, dict]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/{path}", data, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _without_ids(out: dict) -> dict:
    """What a request answered, less what names this one request (its id, run id and time)."""
    ext = {k: v for k, v in out["ttc"].items() if k != "run_id"}
    return {"choices": out["choices"], "usage": out["usage"], "ttc": ext}


def test_32_requests_at_once_answer_as_the_same_requests_one_by_one(tmp_path):
    bodies = [
        {
            "model": "scripted",
            "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            "seed": 100 + i,
            "n": 1 + i % 3,
            **BUDGETS[i % len(BUDGETS)],
        }
        for i in range(32)
    ]
    backend = _backend()
    engine = Together(8, default=backend.engine.default)
    backend.engine = engine
    with _serving(tmp_path, backend) as (url, store, runtime):
        runtime.admission = Admission(8)
        with ThreadPoolExecutor(32) as pool:
            together = list(pool.map(lambda b: _post(url, b), bodies))
        assert engine.most >= 8  # eight requests were inside the engine at once
        engine.barrier = threading.Barrier(1)  # one by one, now
        alone = [_post(url, b) for b in bodies]
    assert all(status == 200 for status, _ in together + alone), [o for s, o in together + alone if s != 200][:1]
    assert [_without_ids(o) for _, o in together] == [_without_ids(o) for _, o in alone]
    # the budgets reached different cells and bins, and every request is its own run
    cells = {c["ttc"]["configuration"]["budget_flops"] for _, o in alone for c in o["choices"]}
    assert len(cells) >= 3 and {c["ttc"]["bin"] for _, o in alone for c in o["choices"]} == {1, 2}
    assert _runs(store) == 64


def test_requests_are_let_in_first_come_first_served_up_to_the_limit():
    admission = Admission(2)
    release = threading.Event()
    entered: list[str] = []
    lock = threading.Lock()

    def request(name: str) -> None:
        with admission():
            with lock:
                entered.append(name)
                assert admission.running <= 2
            release.wait(60)

    threads = []
    for i, name in enumerate("abcde"):  # each one waiting before the next arrives
        t = threading.Thread(target=request, args=(name,))
        t.start()
        threads.append(t)
        wait_until(lambda n=i + 1: admission.issued == n, 30, f"request {name} to queue")
    wait_until(lambda: len(entered) == 2, 30, "two requests admitted")
    assert entered == ["a", "b"] and admission.running == 2
    release.set()
    for t in threads:
        t.join(60)
    assert entered == ["a", "b", "c", "d", "e"] and admission.running == 0


def _prompt_tokens(question: str) -> int:
    return len(f"Q: {question}\nA:")  # FakeTask's few-shot prompt, one token per character


def _one_sample(question: str) -> float:
    """One sample of the question by the pricing rule, by hand: its prompt's prefill and the study's max_tokens."""
    p, m = _prompt_tokens(question), _policy().spec["max_tokens"]
    return float(prefill_flops(GEN_ARCH, p)) + float(decode_flops(GEN_ARCH, p, m))


@pytest.mark.parametrize(
    "body, header, default, expected",
    [
        ({}, "2e7", None, 2e7),  # the header when the body has none
        ({}, "2e7 FLOPs", None, 2e7),
        ({"ttc_budget_flops": 3e7}, "2e7", None, 3e7),  # the body wins over the header
        ({}, None, Budget(1.5e7, "flops", "--default-budget"), 1.5e7),  # the server's default when neither
        ({}, "2e7", Budget(1.5e7, "flops", "--default-budget"), 2e7),  # the header wins over the default
        ({"ttc_budget_samples": 40}, None, None, 40),  # in samples: that many samples of this question
        ({}, "40 samples", None, 40),
        ({}, None, Budget(40, "samples", "--default-budget"), 40),
    ],
)
def test_the_budget_from_body_header_or_default_in_flops_or_samples(tmp_path, body, header, default, expected):
    unit = "samples" if "samples" in json.dumps([body, header, default and default.unit]) else "flops"
    flops = expected * _one_sample("a hard one") if unit == "samples" else expected
    with _serving(tmp_path) as (url, store, runtime):
        runtime.default_budget = default
        request = {"model": "scripted", "messages": [{"role": "user", "content": "a hard one"}], "seed": 2, **body}
        status, out = _post(url, request, {"X-TTC-Budget": header} if header else None)
        assert status == 200, out
        assert out["ttc"]["budget_flops"] == pytest.approx(flops) and out["ttc"]["flops"] <= flops
        run = store.get_run(out["ttc"]["run_id"])
        assert json.loads(run["spec_json"])["served"]["budget_flops"] == pytest.approx(flops)
        # the same budget given in FLOPs in the body answers alike
        status, same = _post(
            url, {**request, "ttc_budget_samples": None, "ttc_budget_flops": out["ttc"]["budget_flops"]}
        )
        assert status == 200 and _without_ids(same) == _without_ids(out)


@pytest.mark.parametrize(
    "body, header, param, message",
    [
        ({}, "lots", "X-TTC-Budget", "X-TTC-Budget: 'lots' is not a budget; allowed: a positive number of FLOPs"),
        ({}, "-1e7", "X-TTC-Budget", "X-TTC-Budget: '-1e7' is not a budget"),
        ({}, "4 tokens", "X-TTC-Budget", "X-TTC-Budget: '4 tokens' is not a budget"),
        ({}, "inf", "X-TTC-Budget", "X-TTC-Budget: 'inf' is not a budget"),
        ({"ttc_budget_flops": 3e7}, "lots", "X-TTC-Budget", "is not a budget"),  # refused even when unused
        ({}, "1 samples", "X-TTC-Budget", "X-TTC-Budget: 1 samples ("),
        ({"ttc_budget_samples": 1}, None, "ttc_budget_samples", "ttc_budget_samples: 1 samples ("),
        ({"ttc_budget_samples": 0}, None, "ttc_budget_samples", "ttc_budget_samples: Input should be greater than 0"),
        (
            {"ttc_budget_samples": 40, "ttc_budget_flops": 3e7},
            None,
            "ttc_budget_samples",
            "ttc_budget_samples: given with ttc_budget_flops; give the budget once",
        ),
    ],
)
def test_a_bad_budget_is_refused_naming_where_it_came_from(tmp_path, body, header, param, message):
    with _serving(tmp_path) as (url, store, runtime):
        request = {"model": "scripted", "messages": [{"role": "user", "content": "a hard one"}], **body}
        status, out = _post(url, request, {"X-TTC-Budget": header} if header else None)
        assert status == 400 and out["error"]["param"] == param and message in out["error"]["message"], out
        assert runtime.backend.engine.calls == [] and _runs(store) == 0
    if "1 samples" in message:  # below the minimum: said in samples too
        assert "samples)" in out["error"]["message"].split("allowed: ")[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--default-budget", "lots"], "error: --default-budget: 'lots' is not a budget; allowed: a positive number"),
        (["--concurrency", "0"], "error: --concurrency: 0 requests at once; allowed: 1 or more"),
    ],
)
def test_bad_serve_options_stop_it_at_start_with_one_line(tmp_path, capsys, args, message):
    code = main(["serve", "--policy", str(tmp_path / "none.json"), "--store", str(tmp_path / "served"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err
    assert not (tmp_path / "served").exists()


def test_an_engine_that_generates_for_one_caller_at_a_time_serves_one_request_at_a_time():
    backend = _backend()
    backend.engine.concurrent_generate = False  # as vLLM in-process
    assert Runtime(_policy(), backend).concurrency == 1
    with pytest.raises(Exception, match=r"--concurrency: 2, but the scripted engine generates for one caller"):
        Runtime(_policy(), backend, concurrency=2)
    assert Runtime(_policy(), _backend()).concurrency == ScriptedEngine.n_parallel


@pytest.mark.parametrize("reproducible", [False, True])
def test_reproducible_serving_gives_llamacpp_one_slot_and_no_prompt_cache(monkeypatch, reproducible):
    """`ttc serve --reproducible`: the study's llama.cpp options with one slot and the prompt cache off (each
    completion a function of its prompt and seed); without it, the study's own options."""
    import backend.engines
    import backend.models.registry
    import backend.tasks
    import backend.verifiers
    from backend.serving.runtime import open_backend

    opened = {}
    monkeypatch.setattr(backend.models.registry, "resolve_model", lambda name, field: name)
    monkeypatch.setattr(backend.tasks, "create_task", lambda spec, seed: _backend().task.task)
    monkeypatch.setattr(backend.engines, "create_engine", lambda model, options: opened.setdefault("o", options))
    monkeypatch.setattr(backend.verifiers, "create_verifier", lambda *a, **k: None)
    import yaml

    policy = _policy()
    study = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())  # a spec the spec check takes
    spec = {**study, "engine": {"kind": "llamacpp", "n_parallel": 6}}
    open_backend(policy.model_copy(update={"spec": spec}), reproducible)
    options = opened["o"]
    assert (options.n_parallel, options.prompt_cache) == ((1, False) if reproducible else (6, True))


def test_reproducible_serving_refuses_an_engine_it_cannot_make_reproducible(monkeypatch):
    import yaml

    import backend.models.registry
    import backend.tasks
    from backend.errors import SpecError
    from backend.serving.runtime import open_backend

    monkeypatch.setattr(backend.models.registry, "resolve_model", lambda name, field: name)
    monkeypatch.setattr(backend.tasks, "create_task", lambda spec, seed: _backend().task.task)
    study = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    spec = {**study, "engine": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}}
    with pytest.raises(SpecError, match=r"--reproducible: the policy's engine is 'openai', whose server batches"):
        open_backend(_policy().model_copy(update={"spec": spec}), reproducible=True)
