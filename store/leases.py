"""Runs are held by leases: a worker that claims a run holds it until `lease_expires_at`, and renews the lease with
every heartbeat. A worker that dies (killed, out of memory, its machine gone) stops renewing; once its lease has
expired any worker may claim the run and resume it, generating only the samples still missing (their keys and
seeds are fixed by the spec, so nothing is duplicated or lost).

Why leases and not "the pid is gone": workers run on several machines, and a pid means nothing on another host.
On the worker's own host a holder whose process is gone has given its lease up at once (`ttc run` restarted after
Ctrl-C or a kill does not wait for the expiry).

A worker that was only paused past its lease (a stopped process, a suspended machine) finds at its next renewal
that another worker holds the run: it stops at once, and until then `Lease.check` (run before every shard it
writes) refuses to write once the lease may have expired, so two workers never write the same rows."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, text

import store.catalog as catalogs
from store.errors import TtcError

LEASE_S = 15.0
"""How long a claim holds without renewal. Heartbeats renew every 2 s, so a live worker is never near it."""
RENEW_MARGIN_S = 3.0
"""A holder stops writing this long before its lease could have expired without a renewal."""

_RUN_FOR_UPDATE = {
    "sqlite": "SELECT status, worker_id, worker_host, worker_pid, lease_expires_at, heartbeat_at FROM runs "
    "WHERE run_id = :r",
    "postgresql": "SELECT status, worker_id, worker_host, worker_pid, lease_expires_at, heartbeat_at FROM runs "
    "WHERE run_id = :r FOR UPDATE",
}
_NEXT_CLAIMABLE = {
    # the oldest queued run, else the oldest running one whose lease expired (rows from before leases: heartbeat)
    "sqlite": "SELECT run_id, spec_json FROM runs WHERE status = 'queued' OR (status = 'running' AND ("
    "lease_expires_at < :now OR (lease_expires_at IS NULL AND (heartbeat_at IS NULL OR heartbeat_at < :stale)))) "
    "ORDER BY status = 'running', created_at LIMIT 1",
    "postgresql": "SELECT run_id, spec_json FROM runs WHERE status = 'queued' OR (status = 'running' AND ("
    "lease_expires_at < :now OR (lease_expires_at IS NULL AND (heartbeat_at IS NULL OR heartbeat_at < :stale)))) "
    "ORDER BY status = 'running', created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
}


class LeaseLost(TtcError):
    """Another worker holds the run now (this one's lease expired while it was paused or cut off)."""


class RunBusy(TtcError):
    """The run is held by another live worker."""


def new_holder() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


_PROCESS_HOLDER: dict[int, str] = {}


def process_holder() -> str:
    """This process's holder id for runs it executes directly (`ttc run`, a notebook): running a run again in the
    same process, after a failure the catalog could not record (a full disk), is the same holder taking it back."""
    return _PROCESS_HOLDER.setdefault(os.getpid(), new_holder())


def pid_running(pid: int) -> bool:
    """The process exists and has not exited (a zombie, exited but not yet reaped by its parent, has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal test is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"


def _later(iso: str, seconds: float) -> str:
    return (datetime.fromisoformat(iso) + timedelta(seconds=seconds)).isoformat()


def holder_live(row, now: str) -> bool:
    """Whether the run's current holder still holds it: its lease has not expired, and it is not a process of this
    host that is gone."""
    if row.status != "running":
        return False
    if row.lease_expires_at is not None:
        unexpired = row.lease_expires_at >= now
    else:  # claimed before leases existed: its heartbeat is the lease
        unexpired = row.heartbeat_at is not None and _later(row.heartbeat_at, LEASE_S) >= now
    if not unexpired:
        return False
    return not (row.worker_host == socket.gethostname() and row.worker_pid and not pid_running(int(row.worker_pid)))


def take(db: Connection, run_id: str, holder: str) -> bool:
    """In the caller's transaction: take the run for `holder` unless another live holder has it (RunBusy). The row
    must exist. Returns whether it was running (held by this holder, or by one that died)."""
    now = catalogs.now(db)
    row = db.execute(text(_RUN_FOR_UPDATE[db.dialect.name]), {"r": run_id}).one()
    if row.worker_id != holder and holder_live(row, now):
        until = row.lease_expires_at or "its next heartbeat"
        raise RunBusy(
            f"run {run_id} is already running (worker {row.worker_id or row.worker_pid} on {row.worker_host}, lease "
            f"until {until}); wait for it or cancel it"
        )
    db.execute(
        text(
            "UPDATE runs SET status = 'running', worker_id = :w, worker_pid = :p, worker_host = :h, "
            "started_at = COALESCE(started_at, :now), heartbeat_at = :now, lease_expires_at = :until, "
            "attempts = attempts + CASE WHEN worker_id = :w THEN 0 ELSE 1 END, updated_at = :now WHERE run_id = :r"
        ),
        {
            "w": holder,
            "p": os.getpid(),
            "h": socket.gethostname(),
            "now": now,
            "until": _later(now, LEASE_S),
            "r": run_id,
        },
    )
    return row.status == "running"


def next_claimable(db: Connection) -> tuple[str, str] | None:
    """In the caller's transaction: the next run a worker may claim (run id, spec JSON), locked for the caller on
    PostgreSQL (other workers skip it) and behind BEGIN IMMEDIATE on SQLite."""
    now = catalogs.now(db)
    stale = (datetime.fromisoformat(now) - timedelta(seconds=LEASE_S)).isoformat()
    row = db.execute(text(_NEXT_CLAIMABLE[db.dialect.name]), {"now": now, "stale": stale}).first()
    return None if row is None else (row[0], row[1])


class Lease:
    """One holder's hold on one run: `renew` (the heartbeat) and `check` (before every write)."""

    def __init__(self, catalog, run_id: str, holder: str):
        self.catalog, self.run_id, self.holder = catalog, run_id, holder
        self.lost = threading.Event()
        self._held_until = time.monotonic() + LEASE_S - RENEW_MARGIN_S

    def renew(self) -> bool:
        """Extend the lease; returns whether a cancel was requested. Sets `lost` when another worker holds the run."""
        started = time.monotonic()
        with self.catalog.begin() as db:
            now = catalogs.now(db)
            held = db.execute(
                text(
                    "UPDATE runs SET heartbeat_at = :now, lease_expires_at = :until WHERE run_id = :r AND "
                    "worker_id = :w AND status = 'running'"
                ),
                {"now": now, "until": _later(now, LEASE_S), "r": self.run_id, "w": self.holder},
            ).rowcount
            cancel = db.execute(
                text("SELECT cancel_requested FROM runs WHERE run_id = :r"), {"r": self.run_id}
            ).scalar()
        if not held:
            self.lost.set()
        else:
            self._held_until = started + LEASE_S - RENEW_MARGIN_S
        return bool(cancel)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"run {self.run_id}: another worker holds it now; this worker ({self.holder}) stopped")
        if time.monotonic() > self._held_until:
            raise LeaseLost(
                f"run {self.run_id}: its lease could not be renewed for {LEASE_S - RENEW_MARGIN_S:.0f} s (catalog "
                f"unreachable or this worker paused); stopped writing so another worker can resume it"
            )
