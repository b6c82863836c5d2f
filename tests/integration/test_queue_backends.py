"""The job queue with real `ttc worker` processes on a real model, on both catalog backends (the store's SQLite file
and a PostgreSQL server): two workers share ten runs and every run is done exactly once; a worker SIGKILLed mid-run
loses its run only until its lease expires, then another worker finishes it with no sample duplicated or lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from backend.config import parse_spec
from backend.execution.queue import submit
from backend.execution.workers import worker_table
from store import Store
from store import catalog as catalogs
from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.real_model


def _spec(i: int, questions: int, samples: int, max_tokens: int):
    return parse_spec(
        {
            "name": f"q{i}",
            "seed": i,
            "models": ["gemma-3-270m"],
            "task": {"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": questions}]},
            "samples_per_question": samples,
            "max_tokens": max_tokens,
            "engine": {"kind": "llamacpp", "n_parallel": 2},
        }
    )


def _worker(store: Store, log: Path, *extra: str) -> subprocess.Popen:
    """A separate `ttc worker` process; it finds a server catalog through the store folder's pointer and the
    password through PGPASSWORD, as a worker on another machine would."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "worker", "--store", str(store.root), *extra],
            cwd=ROOT,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _keys(store: Store, run_id: str) -> tuple[int, int]:
    df = store.query(
        "SELECT count(*) AS n, count(DISTINCT (question_id, sample_idx)) AS k FROM samples WHERE run_id = ?", [run_id]
    )
    return int(df["n"][0]), int(df["k"][0])


def test_two_workers_do_ten_runs_each_exactly_once(tmp_path, catalog):
    store = Store.open(tmp_path / "s", catalog=catalog)
    ids = [submit(store, _spec(i, 1, 2, 8)) for i in range(10)]
    workers = [_worker(store, tmp_path / f"w{k}.log", "--once") for k in range(2)]
    try:
        for w in workers:
            assert w.wait(timeout=600) == 0, (tmp_path / "w0.log").read_text() + (tmp_path / "w1.log").read_text()
    finally:
        for w in workers:
            w.kill()
    runs = {r["run_id"]: r for r in store.runs_arrow().to_pylist()}
    assert [runs[i]["status"] for i in ids] == ["done"] * 10, [runs[i]["error"] for i in ids]
    assert [runs[i]["attempts"] for i in ids] == [1] * 10  # claimed once each: no run taken by both workers
    assert [_keys(store, i) for i in ids] == [(2, 2)] * 10
    holders = {runs[i]["worker_id"] for i in ids}
    assert holders <= {w.worker_id for w in worker_table(store)}


def test_a_killed_workers_run_is_finished_by_another_once_its_lease_expires(tmp_path, catalog):
    store = Store.open(tmp_path / "s", catalog=catalog)
    run_id = submit(store, _spec(0, 4, 8, 48))  # 32 samples: several flushes before the kill
    first = _worker(store, tmp_path / "first.log")
    second = None
    try:
        wait_until(lambda: _keys(store, run_id)[0] >= 4, 300, "the first worker's first samples")
        held = store.get_run(run_id)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        before = _keys(store, run_id)[0]
        second = _worker(store, tmp_path / "second.log")
        taken = wait_until(
            lambda: (r := store.get_run(run_id))["worker_id"] != held["worker_id"] and r, 120, "the takeover"
        )
        with store.catalog.connect() as db:
            now = catalogs.now(db)
        # not before the dead worker's lease ran out (renewed at most once more after `held` was read)
        assert datetime.fromisoformat(now) >= datetime.fromisoformat(held["lease_expires_at"])
        assert taken["attempts"] == 2 and taken["worker_id"].split("-")[-2] == str(second.pid)
        wait_until(lambda: store.get_run(run_id)["status"] == "done", 600, "the second worker to finish the run")
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert _keys(store, run_id) == (32, 32)  # every sample exactly once
    assert before >= 4
