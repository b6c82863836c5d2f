"""`ttc serve`'s request handling on the scripted engine (tests/fakes.py): the budget picks the cell, usage is the sum
of every engine call the stored trees record, bad requests get OpenAI-style errors and write nothing."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from backend.serving.http import make_server
from backend.serving.policy import Policy, content_version
from backend.serving.runtime import Backend, Runtime, ServedTask
from store import Store
from tests.fakes import FAKE_MODEL, FakeTask, ScriptedEngine, ScriptedVerifier

EASY, HARD = 1, 2


def _cell(budget: float, strategy: str, n: int, verifier: str | None) -> dict:
    return {
        "budget_flops": budget,
        "budget_samples": budget / 1e6,
        "configuration": strategy if verifier is None else f"{strategy}[{verifier}]",
        "kind": "pool",
        "strategy": strategy,
        "config": {"n": n, "max_tokens": 16, "temperature": 0.8},
        "verifier": verifier,
        "chosen_fold0": None,
        "chosen_fold1": None,
        "held_out_accuracy": 0.5,
        "interval": [0.25, 0.75],
    }


def _policy() -> Policy:
    body = {
        "format": 1,
        "version": "",
        "model": "scripted",
        "engine": {"kind": "scripted"},
        "verifier": "scripted_verifier",
        "verifier_options": None,
        "spec": {"task": {"kind": "fake"}, "max_tokens": 16},
        "runs": ["study"],
        "bins_kind": "predicted[scripted_verifier]",
        "predictor": {
            "verifier": "scripted_verifier",
            "pilot_samples": 2,
            "max_tokens": 16,
            "temperature": 0.8,
            "thresholds": [0.5],
            "study_values": [0.1, 0.9],
        },
        "bins": [
            {
                "level": EASY,
                "questions": 4,
                "cells": [_cell(3e6, "majority", 2, None), _cell(1e7, "majority", 8, None)],
            },
            {
                "level": HARD,
                "questions": 4,
                "cells": [
                    _cell(5e6, "best_of_n", 2, "scripted_verifier"),
                    _cell(2e7, "best_of_n", 8, "scripted_verifier"),
                ],
            },
        ],
        "baseline": "best_of_n[scripted_verifier]",
        "held_out": "",
        "notes": [],
    }
    body["version"] = content_version(body)
    return Policy.model_validate(body)


def _backend() -> Backend:
    engine = ScriptedEngine([("hard", ["Answer: 7", "Answer: 8", "Answer: 7"])], default="Answer: 4")
    verifier = ScriptedVerifier([("Answer: 4", 0.9), ("Answer: 7", 0.3)], default=0.1)
    return Backend(FAKE_MODEL, engine, verifier, ServedTask(FakeTask()))


@pytest.fixture
def server(tmp_path):
    store = Store.open(tmp_path / "store")
    runtime = Runtime(_policy(), _backend(), store)
    srv = make_server(runtime, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", store, runtime
    srv.shutdown()
    srv.server_close()


def _post(url: str, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/chat/completions", data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _ask(url: str, text: str, budget: float | None = None, **extra) -> dict:
    body = {"model": "scripted", "messages": [{"role": "user", "content": text}], **extra}
    if budget is not None:
        body["ttc_budget_flops"] = budget
    status, out = _post(url, body)
    assert status == 200, out
    return out


def _nodes(store: Store, run_id: str):
    return store.query("SELECT * FROM nodes WHERE run_id = ?", [run_id])


def test_models_lists_the_policys_model(server):
    url, _, _ = server
    with urllib.request.urlopen(f"{url}/models") as r:
        body = json.loads(r.read())
    assert [m["id"] for m in body["data"]] == ["scripted"]


@pytest.mark.parametrize("budget", [1e7, 1.6e7, 3e7, None])
@pytest.mark.parametrize("text, level", [("What is 2+2?", EASY), ("a hard one", HARD)])
def test_budget_picks_the_largest_cell_that_fits_after_the_pilot(server, budget, text, level):
    url, store, runtime = server
    out = _ask(url, text, budget)
    ext = out["choices"][0]["ttc"]
    nodes = _nodes(store, out["ttc"]["run_id"])
    roles = nodes["config"].map(lambda c: json.loads(c)["served"])
    pilot = nodes[roles == "pilot"]
    pilot_flops = float((pilot["generator_flops"] + pilot["verifier_flops"].fillna(0)).sum())
    scores = pilot.loc[pilot["is_final"], "step_score"]
    assert len(scores) == 2 and ext["predicted_score"] == pytest.approx(scores.mean())
    assert ext["bin"] == level == runtime.policy.bin_of(scores.mean())
    cells = runtime.policy.bins[level - 1].cells
    fitting = [c for c in cells if budget is None or c.budget_flops <= budget - pilot_flops]
    assert ext["configuration"]["budget_flops"] == fitting[-1].budget_flops
    assert out["choices"][0]["message"]["content"] == ("Answer: 4" if level == EASY else "Answer: 7")
    if budget is not None:
        assert ext["flops"] == out["ttc"]["flops"] <= budget


def test_budgets_reach_different_cells(server):
    url, _, _ = server
    picked = {_ask(url, "a hard one", b)["choices"][0]["ttc"]["configuration"]["budget_flops"] for b in (1e7, 3e7)}
    assert picked == {5e6, 2e7}


def test_usage_is_the_sum_of_every_stored_engine_call(server):
    url, store, _ = server
    out = _ask(url, "a hard one", 3e7)
    nodes = _nodes(store, out["ttc"]["run_id"])
    calls = nodes[nodes["kind"] != "root"]
    prompt = int(calls["prompt_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_prompt_tokens"])
    completion = int(calls["completion_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_completion_tokens"])
    passes = sum(len(v) for v in nodes["verifier_pass_prompt_tokens"])
    assert out["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    assert out["ttc"]["flops"] == pytest.approx(
        float((nodes["generator_flops"] + nodes["verifier_flops"].fillna(0)).sum())
    )
    assert out["ttc"]["samples"] == len(calls) and out["ttc"]["verifier_passes"] == passes > 0
    run = store.get_run(out["ttc"]["run_id"])
    assert run["status"] == "done" and json.loads(run["spec_json"])["served"]["policy"] == out["ttc"]["policy_version"]


def test_same_seed_same_answer_and_usage(server):
    url, _, _ = server
    a, b = (_ask(url, "a hard one", 3e7, seed=3) for _ in range(2))
    assert a["choices"] == b["choices"] and a["usage"] == b["usage"] and a["ttc"]["run_id"] != b["ttc"]["run_id"]


@pytest.mark.parametrize(
    "body, raw, status, param, message",
    [
        (None, b"{not json", 400, None, "the request body is not JSON"),
        ([1], None, 400, None, "the request body must be a JSON object"),
        ({"messages": [{"role": "user", "content": "x"}]}, None, 400, "model", "model: Field required"),
        (
            {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]},
            None,
            404,
            "model",
            "'gpt-4' is not served",
        ),
        ({"model": "scripted", "messages": []}, None, 400, "messages", "messages: List should have at least 1 item"),
        (
            {"model": "scripted", "messages": [{"role": "user", "content": "x"}], "temperature": 1},
            None,
            400,
            "temperature",
            "temperature: unknown field",
        ),
        (
            {"model": "scripted", "messages": [{"role": "user", "content": "x"}], "ttc_budget_flops": 4e6},
            None,
            400,
            "ttc_budget_flops",
            "ttc_budget_flops: 4e+06 FLOPs is below this request's minimum",
        ),
        (
            {"model": "scripted", "messages": [{"role": "user", "content": "x"}], "ttc_budget_flops": 5.1e6},
            None,
            400,
            "ttc_budget_flops",
            "ttc_budget_flops: 5.1e+06 FLOPs is below this request's minimum",
        ),
        (
            {"model": "scripted", "messages": [{"role": "user", "content": "x"}], "ttc_budget_flops": -1},
            None,
            400,
            "ttc_budget_flops",
            "ttc_budget_flops: Input should be greater than 0",
        ),
        (
            {"model": "scripted", "messages": [{"role": "user", "content": "x"}], "stream_options": {}},
            None,
            400,
            "stream_options",
            "stream_options: only allowed when stream is true",
        ),
        (
            {"model": "scripted", "messages": [{"role": "user", "content": "x"}], "n": 0},
            None,
            400,
            "n",
            "n: Input should be greater than or equal to 1",
        ),
        (
            {"model": "scripted", "messages": [{"role": "system", "content": "x"}]},
            None,
            400,
            "messages",
            "messages: no user message",
        ),
    ],
)
def test_bad_requests_get_openai_errors_and_write_nothing(server, body, raw, status, param, message):
    url, store, runtime = server
    code, out = _post(url, body, raw)
    assert code == status and out["error"]["param"] == param and message in out["error"]["message"]
    assert out["error"]["type"] == "invalid_request_error"
    # refused before anything was generated (a budget too small for the pilot too), and nothing written
    assert runtime.backend.engine.calls == []
    assert store.query("SELECT count(*) AS n FROM runs")["n"].iloc[0] == 0
