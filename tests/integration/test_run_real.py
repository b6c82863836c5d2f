"""Real model, real worker process, real store: the embedded end-to-end slice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from store import Store
from tests.conftest import ROOT, ttc

pytestmark = pytest.mark.real_model

STREAM_SPEC = """
name: stream
models: [gemma-3-270m]
task:
  kind: reasoning_gym
  datasets:
    - {name: basic_arithmetic, size: 5, config: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}}
    - {name: chain_sum, size: 5, config: {min_terms: 2, max_terms: 3, min_digits: 1, max_digits: 2}}
samples_per_question: 8
temperature: 1.0
max_tokens: 40
seed: 3
engine: {kind: llamacpp, n_parallel: 4}
"""
STREAM_TOTAL = 10 * 8


def _count(store_dir) -> int:
    if not (store_dir / "catalog.sqlite").exists():
        return 0
    return int(Store.open(store_dir, create=False).query("select count(*) n from samples")["n"][0])


def _start_run(spec_file, store_dir) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "run", str(spec_file), "--store", str(store_dir), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_smoke_example_fills_every_sample(tmp_path):
    store = tmp_path / "store"
    t0 = time.monotonic()
    proc = ttc("run", "examples/smoke.yaml", "--store", str(store), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    took = time.monotonic() - t0
    out = ttc("sql", "--store", str(store), "select count(*) as n from samples")
    assert out.stdout.splitlines() == ["n", "12"]  # 3 questions x 4 samples
    cut = ttc("sql", "--store", str(store), "select sum(cut) as cut from data_quality").stdout.splitlines()[1]
    assert f"data quality: {int(float(cut))} of 12 (" in proc.stdout, proc.stdout  # the run's summary line
    nulls = ttc(
        "sql",
        "--store",
        str(store),
        "select count(*) filter (where prompt_tokens is null or completion_tokens is null or flops is null or score is null"
        " or logprob_sum is null or latency_s is null) as bad, count(distinct (question_id, sample_idx)) as keys,"
        " min(prompt_tokens) as p, min(flops) as f from samples",
    )
    bad, keys, p, f = nulls.stdout.splitlines()[1].split(",")
    assert (bad, keys) == ("0", "12") and int(p) > 10 and float(f) > 1e9
    # DeepConf's token confidence, one value per generated token, what the confidence-aware votes read
    conf = ttc(
        "sql",
        "--store",
        str(store),
        "select count(*) filter (where len(token_confidence) <> completion_tokens) as off,"
        " count(*) filter (where list_max(token_confidence) > 0) as informative from samples",
    )
    assert conf.stdout.splitlines()[1] == "0,12", conf.stdout
    print(f"smoke run took {took:.1f}s")  # the README's < 2 minutes claim, visible with -s


def test_second_process_sees_the_count_grow(tmp_path, write_spec):
    store = tmp_path / "store"
    proc = _start_run(write_spec(STREAM_SPEC), store)
    seen = []
    try:
        while proc.poll() is None:
            n = _count(store)
            if not seen or n != seen[-1]:
                seen.append(n)
            time.sleep(0.2)
    finally:
        proc.kill()
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    seen.append(_count(store))
    growing = [n for n in seen if 0 < n < STREAM_TOTAL]
    assert len(set(growing)) >= 2, f"reader never saw the run in progress: {seen}"
    assert seen == sorted(seen) and seen[-1] == STREAM_TOTAL


def test_sigkill_then_rerun_resumes_exactly(tmp_path, write_spec):
    store = tmp_path / "store"
    spec_file = write_spec(STREAM_SPEC)
    proc = _start_run(spec_file, store)
    deadline = time.monotonic() + 300
    while _count(store) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(store)
    assert 0 < partial < STREAM_TOTAL
    rerun = ttc("run", str(spec_file), "--store", str(store), "--quiet")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    s = Store.open(store, create=False)
    df = s.query("select count(*) n, count(distinct (run_id, model, question_id, sample_idx)) k from samples")
    assert (int(df["n"][0]), int(df["k"][0])) == (STREAM_TOTAL, STREAM_TOTAL)
    assert f"{STREAM_TOTAL - partial} generated now" in rerun.stdout
    runs = s.query("select status, total_samples from runs")
    assert runs.to_dict("records") == [{"status": "done", "total_samples": STREAM_TOTAL}]
    again = ttc("run", str(spec_file), "--store", str(store), "--quiet")
    assert "0 generated now" in again.stdout and _count(store) == STREAM_TOTAL
