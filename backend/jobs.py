"""The job queue between the dashboard and workers: runs in the catalog with status queued → running → done /
failed / cancelled. Claims are one immediate SQLite transaction, so two workers never take the same run; a
worker's heartbeat lets the dashboard tell a stopped worker from a slow one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from backend.config import RunSpec, parse_spec
from backend.errors import TtcError
from backend.worker import execute, prepare_run
from store import Store
from store.store import HEARTBEAT_STALE_S, utcnow


def submit(store: Store, spec: RunSpec) -> str:
    """Validate the spec completely (models, task suite) and queue it; returns the run id."""
    prepared = prepare_run(spec)
    row = store.get_run(prepared.run_id)
    if row and row["status"] in ("queued", "running"):
        return prepared.run_id
    store.upsert_run(prepared.run_id, spec.name, spec.model_dump(mode="json"), prepared.total_samples, "queued")
    return prepared.run_id


def cancel(store: Store, run_id: str) -> None:
    """Queued runs are cancelled at once; a running one stops at its worker's next heartbeat."""
    with store.catalog.begin() as db:
        db.execute(
            text("UPDATE runs SET status='cancelled', updated_at=:now WHERE run_id=:r AND status='queued'"),
            {"r": run_id, "now": utcnow()},
        )
    store.request_cancel(run_id)


def claim_next(store: Store, worker_pid: int) -> RunSpec | None:
    """Claim the oldest queued run. A queued spec that no longer checks (queued by another ttc-lab version, whose
    spec format or run id differs) is marked failed with the reason instead of being left queued or running."""
    while True:
        now = utcnow()
        with store.catalog.begin() as db:
            row = db.execute(
                text("SELECT run_id, spec_json FROM runs WHERE status='queued' ORDER BY created_at LIMIT 1")
            ).first()
            if row is None:
                return None
            try:
                spec = parse_spec(json.loads(row[1]), "queued spec")
                problem = None if spec.run_id() == row[0] else f"its run id is now {spec.run_id()}; queue it again"
            except (TtcError, ValueError) as e:
                problem = str(e)
            if problem is not None:
                db.execute(
                    text(
                        "UPDATE runs SET status='failed', error=:e, finished_at=:now, updated_at=:now WHERE run_id=:r"
                    ),
                    {"e": f"queued by another ttc-lab version: {problem}"[:2000], "now": now, "r": row[0]},
                )
                continue
            db.execute(
                text(
                    "UPDATE runs SET status='running', worker_pid=:p, worker_host=:h, heartbeat_at=:now, updated_at=:now WHERE run_id=:r"
                ),
                {"p": worker_pid, "h": socket.gethostname(), "now": now, "r": row[0]},
            )
            return spec


@dataclass
class Progress:
    run_id: str
    status: str
    done: int
    total: int
    tokens_per_s: float
    eta_s: float | None
    error: str | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def progress(store: Store, run_id: str, window_s: float = 30.0) -> Progress | None:
    """Done / total, recent tokens per second and an ETA, read from the shards while the worker writes."""
    run = store.get_run(run_id)
    if run is None:
        return None
    df = store.query(
        """
        SELECT count(*) AS done,
               coalesce(sum(completion_tokens) FILTER (WHERE created_at >= now() - to_seconds(?)), 0) AS recent_tokens,
               coalesce(count(*) FILTER (WHERE created_at >= now() - to_seconds(?)), 0) AS recent_samples
        FROM samples WHERE run_id = ?
        """,
        [window_s, window_s, run_id],
    )
    done = int(df["done"][0])
    tps = float(df["recent_tokens"][0]) / window_s
    rate = float(df["recent_samples"][0]) / window_s
    remaining = max(int(run["total_samples"]) - done, 0)
    eta = remaining / rate if rate > 0 and run["status"] == "running" else None
    return Progress(run_id, run["status"], done, int(run["total_samples"]), tps, eta, run["error"])


def live_workers(store: Store) -> list[dict]:
    cutoff = time.time() - HEARTBEAT_STALE_S
    with store.catalog.connect() as db:
        rows = db.execute(text("SELECT * FROM workers WHERE stopped_at IS NULL")).mappings().all()
    return [dict(r) for r in rows if datetime.fromisoformat(r["heartbeat_at"]).timestamp() >= cutoff]


def _beat(store: Store, worker_id: str, run_id: str | None) -> None:
    with store.catalog.begin() as db:
        db.execute(
            text("UPDATE workers SET heartbeat_at=:now, current_run_id=:r WHERE worker_id=:w"),
            {"now": utcnow(), "r": run_id, "w": worker_id},
        )


def worker_loop(store: Store, once: bool = False, poll_s: float = 1.0, stop: threading.Event | None = None) -> int:
    """Claim and execute queued runs until stopped (or, with `once`, until the queue is empty)."""
    stop = stop or threading.Event()
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    now = utcnow()
    with store.catalog.begin() as db:
        db.execute(
            text("INSERT INTO workers(worker_id, pid, host, started_at, heartbeat_at) VALUES (:w, :p, :h, :now, :now)"),
            {"w": worker_id, "p": os.getpid(), "h": socket.gethostname(), "now": now},
        )
    current: dict = {"run": None}

    def beat() -> None:
        while not stop.wait(2.0):
            try:
                _beat(store, worker_id, current["run"])
            except Exception:
                pass

    threading.Thread(target=beat, name="ttc-worker-heartbeat", daemon=True).start()
    handled = 0
    try:
        while not stop.is_set():
            spec = claim_next(store, os.getpid())
            if spec is None:
                if once:
                    break
                stop.wait(poll_s)
                continue
            current["run"] = spec.run_id()
            try:
                prepared = prepare_run(spec)
            except TtcError as e:  # a model or task that was there when it was queued is gone: the run fails, said why
                store.finish_run(current["run"], "failed", str(e)[:2000])
                print(f"run {current['run']}: {e}", file=sys.stderr)
            else:
                try:
                    execute(prepared, store)
                except TtcError as e:  # recorded on the run by execute(); the worker carries on
                    print(f"run {current['run']}: {e}", file=sys.stderr)
            handled += 1
            current["run"] = None
    finally:
        stop.set()
        with store.catalog.begin() as db:
            db.execute(text("UPDATE workers SET stopped_at=:now WHERE worker_id=:w"), {"now": utcnow(), "w": worker_id})
    return handled


def spawn_worker(store_dir: Path, log_path: Path | None = None) -> int:
    """Start `ttc worker` as a detached process (its own session, so a dashboard restart does not kill it)."""
    log = open(log_path or Path(store_dir) / "worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker", "--store", str(store_dir)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc.pid


def install_signal_stop(stop: threading.Event) -> None:
    def handler(_sig, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
