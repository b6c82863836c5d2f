"""Worker processes: `ttc worker` claims queued runs (backend/execution/queue.py) and executes them
(backend/execution/execute.py). Its heartbeat lets the dashboard tell a stopped worker from a slow one; the dashboard
starts one per store under a file lock; `ttc worker stop` signals local ones."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

import store.catalog as catalogs
from backend.errors import TtcError, WorkerError
from backend.execution.execute import execute
from backend.execution.queue import claim_next
from backend.execution.sampling import prepare_run
from store import Store, leases
from store.leases import pid_running
from store.store import HEARTBEAT_STALE_S


@dataclass(frozen=True)
class WorkerRow:
    """A worker the catalog knows, with the run it holds and the age of its last heartbeat."""

    worker_id: str
    pid: int
    host: str
    started_at: str
    heartbeat_at: str
    heartbeat_age_s: float
    stopped_at: str | None
    current_run_id: str | None
    run_name: str | None
    run_status: str | None
    cancel_requested: bool = False  # the current run's cancel was asked for

    @property
    def state(self) -> str:
        """What the worker is doing, in the words the dashboard's headers use: idle, running RUN or cancelling RUN.
        A run counts while it is running: one that has just ended (its worker not yet beaten since) is not."""
        if self.current_run_id is None or self.run_status != "running":
            return "idle"
        return f"{'cancelling' if self.cancel_requested else 'running'} {self.run_name or self.current_run_id}"

    @property
    def live(self) -> bool:
        return self.stopped_at is None and self.heartbeat_age_s <= HEARTBEAT_STALE_S

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    @property
    def label(self) -> str:
        return f"{self.host}-{self.pid}"


def worker_table(store: Store) -> list[WorkerRow]:
    """Every worker the store has seen: the live ones (oldest first), then the others (most recently seen first).
    A row not marked stopped whose heartbeat is stale is a worker that crashed or was killed."""
    with store.catalog.connect() as db:
        now = datetime.fromisoformat(catalogs.now(db))  # the catalog's clock: heartbeats of other hosts compare fairly
        rows = (
            db.execute(
                text(
                    "SELECT w.*, r.name AS run_name, r.status AS run_status, r.cancel_requested FROM workers w"
                    " LEFT JOIN runs r ON r.run_id = w.current_run_id ORDER BY w.heartbeat_at DESC"
                )
            )
            .mappings()
            .all()
        )
    table = [
        WorkerRow(
            worker_id=r["worker_id"],
            pid=int(r["pid"]),
            host=r["host"],
            started_at=r["started_at"],
            heartbeat_at=r["heartbeat_at"],
            heartbeat_age_s=max(0.0, (now - datetime.fromisoformat(r["heartbeat_at"])).total_seconds()),
            stopped_at=r["stopped_at"],
            current_run_id=r["current_run_id"],
            run_name=r["run_name"],
            run_status=r["run_status"],
            cancel_requested=bool(r["cancel_requested"]),
        )
        for r in rows
    ]
    return sorted((w for w in table if w.live), key=lambda w: w.started_at) + [w for w in table if not w.live]


def live_workers(store: Store) -> list[dict]:
    return [asdict(w) for w in worker_table(store) if w.live]


def _beat(store: Store, worker_id: str, run_id: str | None) -> None:
    with store.catalog.begin() as db:
        db.execute(
            text("UPDATE workers SET heartbeat_at=:now, current_run_id=:r WHERE worker_id=:w"),
            {"now": catalogs.now(db), "r": run_id, "w": worker_id},
        )


def _mark_stopped(store: Store, worker_id: str) -> None:
    with store.catalog.begin() as db:
        db.execute(
            text("UPDATE workers SET stopped_at=:now WHERE worker_id=:w AND stopped_at IS NULL"),
            {"now": catalogs.now(db), "w": worker_id},
        )


def worker_loop(
    store: Store,
    once: bool = False,
    poll_s: float = 1.0,
    stop: threading.Event | None = None,
    ray_address: str | None = None,
) -> int:
    """Claim and execute queued runs until stopped (or, with `once`, until the queue is empty). A stop that comes
    mid-run ends the run at its next heartbeat and queues it again (`execute`), so the next worker resumes it; the
    heartbeat goes on until the loop has returned, so `ttc worker status` shows a stopping worker as live."""
    stop = stop or threading.Event()
    finished = threading.Event()
    worker_id = leases.new_holder()
    with store.catalog.begin() as db:
        db.execute(
            text("INSERT INTO workers(worker_id, pid, host, started_at, heartbeat_at) VALUES (:w, :p, :h, :now, :now)"),
            {"w": worker_id, "p": os.getpid(), "h": socket.gethostname(), "now": catalogs.now(db)},
        )
    current: dict = {"run": None}

    def beat() -> None:
        while not finished.wait(2.0):
            try:
                _beat(store, worker_id, current["run"])
            except Exception:
                pass

    threading.Thread(target=beat, name="ttc-worker-heartbeat", daemon=True).start()
    handled = 0
    try:
        while not stop.is_set():
            spec = claim_next(store, worker_id)
            if spec is None:
                if once:
                    break
                stop.wait(poll_s)
                continue
            current["run"] = spec.run_id()
            _beat(store, worker_id, current["run"])  # `ttc worker status` shows the run now, not at the next beat
            try:
                prepared = prepare_run(spec)
            except TtcError as e:  # a model or task that was there when it was queued is gone: the run fails, said why
                store.finish_run(current["run"], "failed", str(e)[:2000], holder=worker_id)
                print(f"run {current['run']}: {e}", file=sys.stderr)
            else:
                try:
                    execute(prepared, store, stop=stop, holder=worker_id, ray_address=ray_address)
                except TtcError as e:  # recorded on the run by execute(); the worker carries on (or stops)
                    print(f"run {current['run']}: {e}", file=sys.stderr)
            handled += 1
            current["run"] = None
            _beat(store, worker_id, None)
    finally:
        stop.set()
        finished.set()
        _mark_stopped(store, worker_id)
    return handled


WORKER_LOCK_FILE = "worker.lock"
WORKER_LOG_FILE = "worker.log"


def _spawn(store: Store, log_path: Path | None = None) -> subprocess.Popen:
    """`ttc worker` as a detached process: its own session, so neither Ctrl-C in the dashboard's terminal nor a
    dashboard restart stops it. A thread reaps it, so a worker that exits while its starter lives leaves no
    zombie behind (which would still answer `kill -0` and look alive to `ttc worker stop`). A server catalog's URL
    (and password) reaches it through the environment, not its command line."""
    with open(log_path or Path(store.root) / WORKER_LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "worker", "--store", str(store.root)],
            env={**os.environ, **store.catalog_env()},
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    threading.Thread(target=proc.wait, name=f"ttc-reap-{proc.pid}", daemon=True).start()
    return proc


@dataclass(frozen=True)
class WorkerStart:
    worker: WorkerRow
    started: bool  # False: a live worker already served the store


def ensure_worker(store: Store, register_timeout_s: float = 60.0) -> WorkerStart:
    """The store's live worker, started first if there is none: two dashboards on one store, or two clicks on
    "Start worker", never start two workers.

    Why a lock around check-and-start, and not a lock the worker holds for its lifetime: running extra `ttc worker`
    processes by hand is allowed (claims are atomic), so a worker must not refuse to run; what must not happen is
    two callers each seeing no worker and each starting one. An exclusive flock on DIR/worker.lock is held from
    the check until the new worker's row is in the catalog, so a second caller waits, then finds that worker. The
    kernel drops the lock when its holder dies, so a killed dashboard never leaves the store locked."""
    root = Path(store.root)
    try:
        lock = open(root / WORKER_LOCK_FILE, "a")
    except OSError as e:
        raise WorkerError(
            f"worker: cannot start one for {root} ({e.strerror}); allowed: a store directory you can write"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        live = [w for w in worker_table(store) if w.live]
        if live:
            return WorkerStart(live[0], False)
        proc = _spawn(store)
        deadline = time.monotonic() + register_timeout_s
        while True:
            mine = [w for w in worker_table(store) if w.live and w.pid == proc.pid]
            if mine:
                return WorkerStart(mine[0], True)
            if proc.poll() is not None:
                raise WorkerError(
                    f"worker: the worker started for {root} exited before registering (exit code {proc.returncode}); "
                    f"its log is {root / WORKER_LOG_FILE}"
                )
            if time.monotonic() > deadline:
                raise WorkerError(
                    f"worker: the worker started for {root} (pid {proc.pid}) did not register within "
                    f"{register_timeout_s:.0f} s; its log is {root / WORKER_LOG_FILE}"
                )
            time.sleep(0.1)


def _choices(live: list[WorkerRow]) -> str:
    return ", ".join(f"{w.worker_id} (pid {w.pid})" for w in live) or "no worker is live"


def workers_to_stop(store: Store, targets: Sequence[str], everyone: bool) -> tuple[list[WorkerRow], list[WorkerRow]]:
    """The live workers `ttc worker stop` means: the named ones (worker id or pid), all with `everyone`, else the
    only live one; and, with `everyone`, the live workers on other hosts it leaves alone (a signal cannot reach
    them). A named worker that is unknown, not running or on another host is refused before anything is sent."""
    table = worker_table(store)
    live = [w for w in table if w.live]
    if everyone and targets:
        raise WorkerError("worker stop: --all means every live worker; give either --all or worker ids/pids")
    if everyone:
        local = [w for w in live if w.local]
        remote = [w for w in live if not w.local]
        if remote and not local:
            hosts = ", ".join(sorted({w.host for w in remote}))
            raise WorkerError(f"worker stop: every live worker runs on another host ({hosts}); stop them there")
        return local, remote
    if not targets:
        if len(live) > 1:
            raise WorkerError(
                f"worker stop: {len(live)} workers are live ({_choices(live)}); name one by id or pid, or pass --all"
            )
        chosen = live
    else:
        chosen = []
        for t in targets:
            match = [w for w in table if t == w.worker_id or (t.isdigit() and int(t) == w.pid)]
            match.sort(key=lambda w: not w.live)  # a reused pid: the live worker
            if not match:
                raise WorkerError(
                    f"worker stop: no worker {t!r} in {store.root}; allowed: a live worker's id or pid "
                    f"({_choices(live)})"
                )
            w = match[0]
            if not w.live:
                why = f"stopped at {w.stopped_at}" if w.stopped_at else f"no heartbeat for {w.heartbeat_age_s:.0f} s"
                raise WorkerError(
                    f"worker stop: worker {w.worker_id} is not running ({why}); allowed: a live worker's id or pid "
                    f"({_choices(live)})"
                )
            if w not in chosen:
                chosen.append(w)
    for w in chosen:
        if not w.local:
            raise WorkerError(
                f"worker stop: worker {w.worker_id} runs on host {w.host}, not on this one ({socket.gethostname()}); "
                "run `ttc worker stop` there"
            )
    return chosen, []


def stop_workers(store: Store, workers: Sequence[WorkerRow], wait_s: float) -> list[WorkerRow]:
    """SIGTERM each worker (it finishes cleanly: its run is queued again, its row marked stopped) and wait up to
    `wait_s` for the processes to be gone; returns those still running. A process that is gone without marking
    itself stopped (killed meanwhile) is marked stopped here, so the table does not show it live until it is stale."""
    for w in workers:
        try:
            os.kill(w.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise WorkerError(
                f"worker stop: pid {w.pid} ({w.worker_id}) belongs to another user; stop it as that user"
            ) from None
    deadline = time.monotonic() + wait_s
    running = list(workers)
    while True:
        running = [w for w in running if pid_running(w.pid)]
        if not running or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for w in workers:
        if w not in running:
            _mark_stopped(store, w.worker_id)
    return running


def install_signal_stop(stop: threading.Event) -> None:
    def handler(_sig, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
