"""Worker lifecycle with real `ttc worker` processes: `ttc worker status` shows live workers with their run and
heartbeat, `ttc worker stop` stops them (a run it interrupts is queued again and resumes), a refused stop says why,
and the dashboard's automatic start never starts a second worker, even when several start at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.cli import main
from backend.config import parse_spec
from backend.execution.queue import progress, submit
from backend.execution.workers import worker_table
from store import Store
from store.catalog import utcnow
from tests.conftest import ROOT, ttc, wait_until


def _live(store: Store) -> list:
    return [w for w in worker_table(store) if w.live]


def _start_worker(store: Store, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "worker", "--store", str(store.root), *extra],
            cwd=ROOT,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )


def _kill_workers(store: Store) -> None:
    """Every worker process this test's store knows that still runs (started by a dashboard or ensure_worker)."""
    for w in worker_table(store):
        if w.local and w.stopped_at is None:
            try:
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _fake_worker(store: Store, worker_id: str, pid: int, host: str, *, stopped: bool = False) -> None:
    """A catalog row only (no process): for refusals, which must be decided before any signal is sent."""
    now = utcnow()
    with store.catalog.begin() as db:
        db.execute(
            text(
                "INSERT INTO workers(worker_id, pid, host, started_at, heartbeat_at, stopped_at)"
                " VALUES (:w, :p, :h, :now, :now, :stopped)"
            ),
            {"w": worker_id, "p": pid, "h": host, "now": now, "stopped": now if stopped else None},
        )


def test_worker_once_still_runs_the_queue_and_exits(tmp_path):
    store = Store.open(tmp_path / "store")
    done = ttc("worker", "--store", str(store.root), "--once", timeout=120)
    assert done.returncode == 0 and "worker handled 0 run(s)" in done.stderr
    status = ttc("worker", "status", "--store", str(store.root), timeout=120)
    assert status.returncode == 0
    assert status.stdout.startswith(f"no live worker for {store.root}")
    assert "not running: 1" in status.stdout and "stopped" in status.stdout


def test_status_shows_the_live_worker_and_stop_stops_it(tmp_path):
    store = Store.open(tmp_path / "store")
    worker = _start_worker(store, tmp_path / "worker.log")
    try:
        row = wait_until(lambda: _live(store), 60, "the worker's row")[0]
        assert row.pid == worker.pid
        status = ttc("worker", "status", "--store", str(store.root), timeout=120)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0] == f"1 live worker(s) for {store.root}:"
        assert lines[1].split() == ["WORKER", "PID", "HOST", "RUN", "HEARTBEAT", "STARTED"]
        cells = lines[2].split()
        assert cells[:4] == [row.worker_id, str(worker.pid), socket.gethostname(), "idle"]
        assert cells[5:7] == ["s", "ago"] and 0 <= int(cells[4]) <= 15  # a fresh heartbeat

        unknown = ttc("worker", "stop", "--store", str(store.root), "nope", timeout=120)
        assert unknown.returncode == 2 and worker.poll() is None
        assert unknown.stderr.strip() == (
            f"error: worker stop: no worker 'nope' in {store.root}; allowed: a live worker's id or pid "
            f"({row.worker_id} (pid {worker.pid}))"
        )

        stop = ttc("worker", "stop", "--store", str(store.root), "--wait", "60", timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout.strip() == f"stopped worker {row.worker_id} (pid {worker.pid})"
        assert worker.wait(timeout=60) == 0  # it was gone before `stop` returned; this only reaps it
        status = ttc("worker", "status", "--store", str(store.root), timeout=120)
        assert status.stdout.startswith(f"no live worker for {store.root}")
        assert f"{row.worker_id}  pid {worker.pid} on {socket.gethostname()}: stopped" in status.stdout
        again = ttc("worker", "stop", "--store", str(store.root), str(worker.pid), timeout=120)
        assert again.returncode == 2 and f"worker {row.worker_id} is not running (stopped at " in again.stderr
    finally:
        worker.kill()
        worker.wait()


def test_stop_refuses_workers_of_another_host_and_ambiguous_requests(tmp_path, capsys):
    store = Store.open(tmp_path / "store")
    _fake_worker(store, "far-1-aaaaaa", 1, "far-away-host")
    _fake_worker(store, "far-2-bbbbbb", 2, "far-away-host")
    _fake_worker(store, "old-3-cccccc", 3, socket.gethostname(), stopped=True)
    root = str(store.root)

    def err(*argv: str) -> str:
        assert main(["worker", "stop", "--store", root, *argv]) == 2
        return capsys.readouterr().err.strip()

    here = socket.gethostname()
    assert err("far-1-aaaaaa") == (
        f"error: worker stop: worker far-1-aaaaaa runs on host far-away-host, not on this one ({here}); "
        "run `ttc worker stop` there"
    )
    assert err("2").startswith("error: worker stop: worker far-2-bbbbbb runs on host far-away-host")
    assert err("--all") == (
        "error: worker stop: every live worker runs on another host (far-away-host); stop them there"
    )
    assert err() == (
        "error: worker stop: 2 workers are live (far-1-aaaaaa (pid 1), far-2-bbbbbb (pid 2)); name one by id or "
        "pid, or pass --all"
    )
    assert err("--all", "far-1-aaaaaa").startswith("error: worker stop: --all means every live worker")
    assert err("old-3-cccccc").startswith("error: worker stop: worker old-3-cccccc is not running (stopped at ")
    assert err("--wait", "-1").startswith("error: --wait: -1.0 is negative")
    assert main(["worker", "--once", "status", "--store", root]) == 2
    assert capsys.readouterr().err.startswith("error: --once: only for running a worker")

    assert main(["worker", "status", "--store", root]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"2 live worker(s) for {root}:") and "far-away-host" in out
    assert "old-3-cccccc  pid 3 on" in out


RACE = """
import sys, time
from pathlib import Path
from backend.execution.workers import ensure_worker
from store import Store
store, go = Store.open(sys.argv[1]), Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
start = ensure_worker(store)
print(start.started, start.worker.pid, start.worker.worker_id)
"""


def test_concurrent_automatic_starts_start_exactly_one_worker(tmp_path):
    store = Store.open(tmp_path / "store")
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(store.root), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        go.touch()  # the racers poll for it: they all call ensure_worker at once
        results = [r.communicate(timeout=120) for r in racers]
        assert all(r.returncode == 0 for r in racers), [e for _o, e in results]
        answers = sorted(o.split() for o, _e in results)
        assert [a[0] for a in answers] == ["False", "False", "True"]
        assert len({(a[1], a[2]) for a in answers}) == 1  # all three got the same worker
        live = _live(store)
        assert [(str(w.pid), w.worker_id) for w in live] == [(answers[0][1], answers[0][2])]
    finally:
        for r in racers:
            r.kill()
        _kill_workers(store)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_two_dashboards_share_one_worker_and_say_how_to_stop_it(tmp_path):
    store = Store.open(tmp_path / "store")
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / f"dashboard-{p}.log" for p in ports]
    dashboards = []
    try:
        for port, log in zip(ports, logs):
            with open(log, "wb") as out:
                dashboards.append(
                    subprocess.Popen(  # own process group: the test sends SIGINT to it as a terminal's Ctrl-C would
                        [sys.executable, "-m", "backend.cli", "dashboard", "--store", str(store.root)]
                        + ["--port", str(port), "--headless"],
                        cwd=ROOT,
                        stdout=out,
                        stderr=out,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        for port in ports:
            wait_until(lambda p=port: _serving(p), 120, f"the dashboard on port {port}")
        live = _live(store)
        assert len(live) == 1
        worker = live[0]
        said = [log.read_text() for log in logs]
        assert sorted(f"worker {worker.worker_id} (pid {worker.pid}) started" in s for s in said) == [False, True]
        assert all(f"worker {worker.worker_id} (pid {worker.pid}) " in s for s in said)

        for d in dashboards:
            os.killpg(d.pid, signal.SIGINT)
        assert [d.wait(timeout=60) for d in dashboards] == [0, 0]
        hint = f"keeps running queued runs. Stop it with: ttc worker stop --store {store.root}"
        assert all(hint in log.read_text() for log in logs)
        assert [w.worker_id for w in _live(store)] == [worker.worker_id]  # the worker outlives its dashboards

        stop = ttc("worker", "stop", "--store", str(store.root), timeout=120)
        assert stop.returncode == 0 and stop.stdout.startswith(f"stopped worker {worker.worker_id}"), stop.stderr
        assert not _live(store)
    finally:
        for d in dashboards:
            if d.poll() is None:
                os.killpg(d.pid, signal.SIGKILL)
            d.wait()
        _kill_workers(store)


def _stop_mid_run(store: Store, run_id: str, log: Path) -> int:
    """Start a worker, let it write samples of the run, stop it; returns the samples kept."""
    before = progress(store, run_id).done
    worker = _start_worker(store, log)
    try:
        wait_until(lambda: progress(store, run_id).done >= before + 2, 180, "the worker to write samples")
        status = ttc("worker", "status", "--store", str(store.root), timeout=120)
        assert f" {run_id} (long, running) " in status.stdout, status.stdout
        stop = ttc("worker", "stop", "--store", str(store.root), "--wait", "120", timeout=180)
        assert stop.returncode == 0, stop.stderr
        said = stop.stdout.strip()
        assert said.startswith(f"stopped worker {socket.gethostname()}-{worker.pid}-"), said
        assert said.endswith(f"(pid {worker.pid}); its run {run_id} is queued and resumes when a worker next runs")
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
        worker.wait()
    kept = progress(store, run_id)
    assert kept.status == "queued" and before + 2 <= kept.done < kept.total
    assert not _live(store)
    return kept.done


@pytest.mark.real_model
def test_stopping_a_worker_mid_run_queues_the_run_again_and_the_next_worker_resumes_it(tmp_path):
    store = Store.open(tmp_path / "store")
    spec = parse_spec(
        {
            "name": "long",
            "models": ["gemma-3-270m"],
            "task": {"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": 20}]},
            "samples_per_question": 16,  # 320 samples: far more than the test waits for
            "max_tokens": 32,
            "engine": {"kind": "llamacpp", "n_parallel": 2},
        }
    )
    run_id = submit(store, spec)
    first = _stop_mid_run(store, run_id, tmp_path / "worker.log")
    second = _stop_mid_run(store, run_id, tmp_path / "worker.log")  # it resumed: kept the first's, added more
    keys = store.query("SELECT count(*) AS n, count(DISTINCT (question_id, sample_idx)) AS k FROM samples")
    assert first < second == int(keys["n"][0]) == int(keys["k"][0])  # nothing lost, nothing generated twice


@pytest.mark.real_model
def test_a_killed_workers_run_is_resumed_by_the_next_worker_once_its_heartbeat_is_stale(tmp_path):
    """SIGKILL leaves the run marked running with nobody behind it; another worker takes it after
    HEARTBEAT_STALE_S and finishes it, nothing lost or generated twice."""
    store = Store.open(tmp_path / "store")
    spec = parse_spec(
        {
            "name": "orphan",
            "models": ["gemma-3-270m"],
            "task": {"kind": "reasoning_gym", "datasets": [{"name": "basic_arithmetic", "size": 4}]},
            "samples_per_question": 6,
            "max_tokens": 24,
            "engine": {"kind": "llamacpp", "n_parallel": 2},
        }
    )
    run_id = submit(store, spec)
    first = _start_worker(store, tmp_path / "worker.log")
    try:
        wait_until(lambda: (p := progress(store, run_id)) and p.done >= 4, 180, "the first worker's samples")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert store.get_run(run_id)["status"] == "running"  # what a crash leaves behind
    second = _start_worker(store, tmp_path / "worker.log")
    try:
        wait_until(lambda: store.get_run(run_id)["status"] == "done", 300, "the second worker to finish the run")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    keys = store.query("SELECT count(*) AS n, count(DISTINCT (question_id, sample_idx)) AS k FROM samples")
    assert int(keys["n"][0]) == int(keys["k"][0]) == 4 * 6
