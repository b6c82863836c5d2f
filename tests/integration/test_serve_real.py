"""`ttc serve` on the real shipped model: freeze the committed study (a copy, once for the module), start the server
as a subprocess on a free port, wait until /v1/models answers, send one chat completion and check the answer, its
usage against the stored trees, and that the request's samples landed in the store; then one streamed completion
through the official `openai` client, its pieces and its usage chunk checked the same way. Then concurrency: 32
requests at mixed budgets sent at once, each charged exactly its own work and answered exactly as it is alone."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from backend.serving.policy import load_policy
from bench.serve import cut
from store import Store
from tests.conftest import ROOT, ttc, wait_until
from tests.integration.servers import free_port

pytestmark = pytest.mark.real_model


def _models(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    """The committed study frozen into a policy (a copy of its store: never write into the committed one)."""
    tmp = tmp_path_factory.mktemp("policy")
    study = tmp / "study"
    shutil.copytree(ROOT / "examples" / "studies" / "compute-optimal", study)
    path = tmp / "policy.json"
    out = ttc("policy", "freeze", "--store", str(study), "--n-bins", "2", "--band-boot", "0", "-o", str(path))
    assert out.returncode == 0, out.stderr[-2000:]
    return path


@contextlib.contextmanager
def _serving(policy_file: Path, served: Path, log_file: Path, *options: str):
    """`ttc serve` in a subprocess on a free port, until /v1/models answers; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--policy", str(policy_file), "--store", str(served)]
            + ["--port", str(port), *options],
            cwd=ROOT,
            stderr=log,
        )
        try:
            wait_until(lambda: proc.poll() is None and _models(url), 600, "ttc serve to answer /v1/models")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def stored(store: Store, run_id: str) -> tuple[int, int, int, float]:
    """A served request's engine calls, prompt and completion tokens (verifier passes included) and FLOPs, read back
    from its stored trees."""
    nodes = store.query("SELECT * FROM nodes WHERE run_id = ?", [run_id])
    calls = nodes[nodes["kind"] != "root"]
    prompt = int(calls["prompt_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_prompt_tokens"])
    completion = int(calls["completion_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_completion_tokens"])
    flops = float((nodes["generator_flops"] + nodes["verifier_flops"].fillna(0)).sum())
    return len(calls), prompt, completion, flops


def test_serve_answers_a_chat_completion_and_logs_it(tmp_path: Path, policy_file: Path):
    policy = load_policy(policy_file)
    served = tmp_path / "served"
    with _serving(policy_file, served, tmp_path / "serve.log") as url:
        models = _models(url)
        assert models is not None and [m["id"] for m in models["data"]] == [policy.model]
        reserve = max(b.cells[0].budget_flops for b in policy.bins)
        # the pilot (one sample and its judge pass: about two samples' FLOPs) and a cheap cell: the request stays
        # short on a loaded CPU
        budget = 4 * reserve
        body = {
            "model": policy.model,
            "messages": [{"role": "user", "content": "What is 3 + 4?"}],
            "ttc_budget_flops": budget,
            "seed": 1,
        }
        req = urllib.request.Request(
            f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=1800) as r:
            answer = json.loads(r.read())
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=1800)
        chunks = list(
            client.completions.create(
                model=policy.model,
                prompt="What is 5 + 2?",
                seed=1,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ttc_budget_flops": budget},
            )
        )
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"].strip()
    ext, usage = answer["ttc"], answer["usage"]
    assert ext["policy_version"] == policy.version and answer["choices"][0]["ttc"]["bin"] in (1, 2)
    assert 0 < ext["flops"] <= budget
    store = Store.open(served, create=False)

    samples, prompt, completion, flops = stored(store, ext["run_id"])
    assert samples == ext["samples"] >= policy.predictor.pilot_samples
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion) and completion > 0
    assert ext["flops"] == pytest.approx(flops)
    # the streamed completion: text_completion chunks whose pieces are the answer, then the usage chunk
    body, last = chunks[:-1], chunks[-1]
    assert {c.object for c in chunks} == {"text_completion"} and "".join(c.choices[0].text for c in body).strip()
    assert body[-1].choices[0].finish_reason in ("stop", "length") and last.choices == []
    ext = last.model_extra["ttc"]
    samples, prompt, completion, flops = stored(store, ext["run_id"])
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, ext["samples"]) == (prompt, completion, samples)
    assert ext["flops"] == pytest.approx(flops) and 0 < flops <= budget


TINY_TOKENS = 6  # every completion of the concurrency test: 64 requests stay a few minutes on 2 loaded cores


def _post(url: str, body: dict, headers: dict) -> dict:
    req = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(req, timeout=1800) as r:
        return json.loads(r.read())


def test_32_requests_at_once_give_the_answers_they_get_one_by_one(tmp_path: Path, policy_file: Path):
    """32 requests at mixed budgets sent at once to `ttc serve --reproducible --concurrency 8` on llama.cpp: every
    one is answered, within its budget, its `usage` and FLOPs exactly its own stored samples' and verifier passes'
    (no request is charged another's work), and its choices, usage and configuration are exactly those of the same
    request sent alone afterwards (same seed)."""
    tiny = cut(policy_file, TINY_TOKENS, tmp_path / "tiny.json")  # the same bins, cells and budgets, answered fast
    policy = load_policy(tiny)
    reserve = max(b.cells[0].budget_flops for b in policy.bins)
    # mixed budgets: FLOPs in the body, FLOPs and samples in the header, and the server's default
    budgets: list[tuple[dict, dict]] = [
        ({"ttc_budget_flops": 1.5 * reserve}, {}),
        ({"ttc_budget_flops": 3 * reserve}, {}),
        ({}, {"X-TTC-Budget": f"{6 * reserve:g}"}),
        ({}, {"X-TTC-Budget": "3 samples"}),
        ({}, {}),
    ]
    requests = []
    for i in range(32):
        body, headers = budgets[i % len(budgets)]
        question = f"What is {i % 8 + 2} + {i % 5 + 3}?"
        requests.append(
            (
                {"model": policy.model, "messages": [{"role": "user", "content": question}], "seed": i, **body},
                headers,
            )
        )
    options = ("--default-budget", "4 samples", "--reproducible", "--concurrency", "8")
    with _serving(tiny, tmp_path / "served", tmp_path / "serve.log", *options) as url:
        with ThreadPoolExecutor(len(requests)) as pool:
            together = list(pool.map(lambda r: _post(url, *r), requests))
        alone = [_post(url, *r) for r in requests]

    def answered(out: dict) -> dict:
        return {
            "choices": out["choices"],
            "usage": out["usage"],
            "ttc": {k: v for k, v in out["ttc"].items() if k != "run_id"},
        }

    store = Store.open(tmp_path / "served", create=False)
    for out in together:
        ext = out["ttc"]
        samples, prompt, completion, flops = stored(store, ext["run_id"])
        assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]) == (prompt, completion)
        assert ext["samples"] == samples and ext["flops"] == pytest.approx(flops)
        assert 0 < ext["flops"] <= ext["budget_flops"]
    for i, (a, b) in enumerate(zip(together, alone)):
        assert answered(a) == answered(b), (i, answered(a), answered(b))
    cells = {
        c["ttc"]["configuration"]["name"] + str(c["ttc"]["configuration"]["budget_flops"])
        for o in alone
        for c in o["choices"]
    }
    assert len(cells) >= 2  # the budgets reached different cells
