"""The run queue in the catalog: runs go queued → running → done / failed / cancelled. A claim is one catalog
transaction (BEGIN IMMEDIATE on SQLite, FOR UPDATE SKIP LOCKED on PostgreSQL: store/leases.py), so two workers never
take the same run. Progress is read from the shards while a worker writes them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

import store.catalog as catalogs
from backend.config import RunSpec, parse_spec
from backend.errors import TtcError
from backend.execution.sampling import prepare_run
from store import Store, leases


def submit(store: Store, spec: RunSpec) -> str:
    """Validate the spec completely (models, task suite) and queue it; returns the run id."""
    prepared = prepare_run(spec)
    row = store.get_run(prepared.run_id)
    if row and row["status"] in ("queued", "running"):
        return prepared.run_id
    store.upsert_run(prepared.run_id, spec.name, spec.model_dump(mode="json"), prepared.total_samples, "queued")
    return prepared.run_id


def cancel(store: Store, run_id: str) -> None:
    """Queued runs are cancelled at once; a running one stops within a second or two (backend/execution/execute.py: its worker
    looks for the request every CANCEL_POLL_S and gives up the completions in flight), keeping its finished samples."""
    with store.catalog.begin() as db:
        db.execute(
            text("UPDATE runs SET status='cancelled', updated_at=:now WHERE run_id=:r AND status='queued'"),
            {"r": run_id, "now": catalogs.now(db)},
        )
    store.request_cancel(run_id)


def claim_next(store: Store, holder: str) -> RunSpec | None:
    """Claim the oldest queued run for `holder`, or else the oldest run whose lease expired (its worker was killed,
    ran out of memory, lost its machine); resuming it generates only what is missing. Concurrent workers never take
    the same run: the claim is one transaction that locks the row (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN
    IMMEDIATE` on SQLite). A queued spec that no longer checks (queued by another ttc-lab version, whose spec format
    or run id differs) is marked failed with the reason instead of being left queued or running."""
    while True:
        with store.catalog.begin() as db:
            found = leases.next_claimable(db)
            if found is None:
                return None
            run_id, spec_json = found
            try:
                spec = parse_spec(json.loads(spec_json), "queued spec")
                problem = None if spec.run_id() == run_id else f"its run id is now {spec.run_id()}; queue it again"
            except (TtcError, ValueError) as e:
                problem = str(e)
            if problem is not None:
                now = catalogs.now(db)
                db.execute(
                    text(
                        "UPDATE runs SET status='failed', error=:e, finished_at=:now, updated_at=:now WHERE run_id=:r"
                    ),
                    {"e": f"queued by another ttc-lab version: {problem}"[:2000], "now": now, "r": run_id},
                )
                continue
            leases.take(db, run_id, holder)
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
    worker_id: str | None = None
    lease_left_s: float | None = None  # seconds until the holder's lease expires (negative: expired, worker lost)
    attempts: int = 0  # claims so far: more than one means it was resumed by another worker

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def samples_kept(store: Store, run_ids: Sequence[str]) -> dict[str, int]:
    """How many samples each run has in the store (0 for one with none): what a finished, cancelled or failed run
    kept."""
    if not run_ids:
        return {}
    df = store.query(
        "SELECT run_id, count(*) AS n FROM samples WHERE list_contains(?, run_id) GROUP BY run_id", [list(run_ids)]
    )
    counts = dict(zip(df["run_id"], df["n"].astype(int)))
    return {r: int(counts.get(r, 0)) for r in run_ids}


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
    lease_left = None
    if run["status"] == "running" and run.get("lease_expires_at"):
        with store.catalog.connect() as db:
            now = datetime.fromisoformat(catalogs.now(db))
        lease_left = (datetime.fromisoformat(run["lease_expires_at"]) - now).total_seconds()
    return Progress(
        run_id,
        run["status"],
        done,
        int(run["total_samples"]),
        tps,
        eta,
        run["error"],
        run.get("worker_id"),
        lease_left,
        int(run.get("attempts") or 0),
    )
