"""`ttc serve` on the real shipped model: freeze the committed study (a copy), start the server as a subprocess on a
free port, wait until /v1/models answers, send one chat completion and check the answer, its usage against the
stored trees, and that the request's samples landed in the store; then one streamed completion through the official
`openai` client, its pieces and its usage chunk checked the same way."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from backend.serving.policy import load_policy
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


def test_serve_answers_a_chat_completion_and_logs_it(tmp_path: Path):
    study = tmp_path / "study"
    shutil.copytree(ROOT / "examples" / "studies" / "compute-optimal", study)  # never write into the committed store
    policy_file = tmp_path / "policy.json"
    out = ttc("policy", "freeze", "--store", str(study), "--n-bins", "2", "--band-boot", "0", "-o", str(policy_file))
    assert out.returncode == 0, out.stderr[-2000:]
    policy = load_policy(policy_file)
    served = tmp_path / "served"
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--policy", str(policy_file), "--store", str(served)]
        + ["--port", str(port)],
        cwd=ROOT,
        stderr=log,
    )
    try:
        models = wait_until(lambda: proc.poll() is None and _models(url), 600, "ttc serve to answer /v1/models")
        assert [m["id"] for m in models["data"]] == [policy.model]
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
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"].strip()
    ext, usage = answer["ttc"], answer["usage"]
    assert ext["policy_version"] == policy.version and answer["choices"][0]["ttc"]["bin"] in (1, 2)
    assert 0 < ext["flops"] <= budget
    store = Store.open(served, create=False)

    def stored(run_id: str) -> tuple[int, int, int, float]:
        nodes = store.query("SELECT * FROM nodes WHERE run_id = ?", [run_id])
        calls = nodes[nodes["kind"] != "root"]
        prompt = int(calls["prompt_tokens"].sum()) + sum(sum(v) for v in nodes["verifier_pass_prompt_tokens"])
        completion = int(calls["completion_tokens"].sum()) + sum(
            sum(v) for v in nodes["verifier_pass_completion_tokens"]
        )
        flops = float((nodes["generator_flops"] + nodes["verifier_flops"].fillna(0)).sum())
        return len(calls), prompt, completion, flops

    samples, prompt, completion, flops = stored(ext["run_id"])
    assert samples == ext["samples"] >= policy.predictor.pilot_samples
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion) and completion > 0
    assert ext["flops"] == pytest.approx(flops)
    # the streamed completion: text_completion chunks whose pieces are the answer, then the usage chunk
    body, last = chunks[:-1], chunks[-1]
    assert {c.object for c in chunks} == {"text_completion"} and "".join(c.choices[0].text for c in body).strip()
    assert body[-1].choices[0].finish_reason in ("stop", "length") and last.choices == []
    ext = last.model_extra["ttc"]
    samples, prompt, completion, flops = stored(ext["run_id"])
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, ext["samples"]) == (prompt, completion, samples)
    assert ext["flops"] == pytest.approx(flops) and 0 < flops <= budget
