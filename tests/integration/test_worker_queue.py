"""The queue between the dashboard and a real worker process: submit, claim, progress, cancel."""

import subprocess
import sys

import pytest

from backend.config import parse_spec
from backend.execution.queue import cancel, progress, submit
from backend.execution.workers import live_workers
from store import Store
from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.real_model


def _spec(name: str, questions: int, samples: int, max_tokens: int):
    return parse_spec(
        {
            "name": name,
            "models": ["gemma-3-270m"],
            "task": {"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": questions}]},
            "samples_per_question": samples,
            "max_tokens": max_tokens,
            "engine": {"kind": "llamacpp", "n_parallel": 2},
        }
    )


def test_worker_runs_queued_jobs_and_honours_cancel(tmp_path):
    store = Store.open(tmp_path / "store")
    quick = submit(store, _spec("quick", 2, 2, 8))
    slow = submit(store, _spec("slow", 20, 16, 64))  # 320 samples: far more than the test waits for
    queued_then_cancelled = submit(store, _spec("never", 1, 1, 8))
    cancel(store, queued_then_cancelled)
    assert store.get_run(queued_then_cancelled)["status"] == "cancelled"
    worker = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker", "--store", str(store.root), "--once"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: live_workers(store), 30, "the worker's heartbeat")
        wait_until(lambda: store.get_run(quick)["status"] == "done", 120, "the quick run")
        assert progress(store, quick).fraction == 1.0
        wait_until(lambda: (p := progress(store, slow)) and p.done >= 4, 120, "the slow run to write samples")
        cancel(store, slow)
        wait_until(lambda: store.get_run(slow)["status"] == "cancelled", 60, "the cancel to reach the worker")
        assert worker.wait(timeout=60) == 0  # --once: the queue is empty, the worker exits
    finally:
        worker.kill()
    p = progress(store, slow)
    assert 4 <= p.done < p.total and p.status == "cancelled"
    assert store.get_run(queued_then_cancelled)["status"] == "cancelled"  # never claimed
    assert not live_workers(store)
