"""Append-only named migrations of the catalog (runs / job queue). Never edit one that has shipped: add the
next `mNNN_...` function. `tests/unit/test_store_schema.py` pins the exact schema a fresh store gets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from store.catalog import lock_for_migrations

MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = []


def migration(fn: Callable[[Connection], None]) -> Callable[[Connection], None]:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_runs(db: Connection) -> None:
    """One row per run; doubles as the job queue the dashboard submits to and workers claim."""
    db.execute(
        text(
            """
            CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                spec_json TEXT NOT NULL,
                status TEXT NOT NULL,          -- queued | running | done | failed | cancelled
                total_samples INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                started_at TEXT,
                finished_at TEXT,
                heartbeat_at TEXT,
                worker_pid INTEGER,
                worker_host TEXT,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                error TEXT
            )
            """
        )
    )
    db.execute(text("CREATE INDEX runs_status ON runs(status)"))


@migration
def m002_shard_schema_version(db: Connection) -> None:
    """Records which Parquet shard layout (store/schema.py) this store's workers write."""
    db.execute(text("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"))
    db.execute(text("INSERT INTO store_meta(key, value) VALUES ('shard_schema_version', '1')"))


@migration
def m003_workers(db: Connection) -> None:
    """Live workers and their heartbeats, so the dashboard can tell a stopped worker from a slow one."""
    db.execute(
        text(
            """
            CREATE TABLE workers (
                worker_id TEXT PRIMARY KEY,
                pid INTEGER NOT NULL,
                host TEXT NOT NULL,
                started_at TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL,
                current_run_id TEXT,
                stopped_at TEXT
            )
            """
        )
    )


@migration
def m004_grade_error(db: Connection) -> None:
    """Shard layout 2: samples and nodes gain `grade_error`, so a checker that raises on one sample is recorded on
    that sample and the run goes on (shards written before read it as NULL)."""
    db.execute(text("UPDATE store_meta SET value = '2' WHERE key = 'shard_schema_version'"))


@migration
def m005_node_kind(db: Connection) -> None:
    """Shard layout 3: nodes get a `kind` column (root, step, revision, ...) and `finish_reason` keeps the engine's
    reason alone; layout-2 shards, which folded the two ("revision:stop"), read as layout 3 (store/schema.READ_AS)."""
    db.execute(text("UPDATE store_meta SET value = '3' WHERE key = 'shard_schema_version'"))


@migration
def m006_sample_dataset(db: Connection) -> None:
    """Shard layout 4: samples.task is the suite's kind (as questions.task) and the dataset has its own column;
    layout-3 shards, whose `task` held the dataset, read it as `dataset` (store/schema.READ_AS)."""
    db.execute(text("UPDATE store_meta SET value = '4' WHERE key = 'shard_schema_version'"))


@migration
def m007_run_leases(db: Connection) -> None:
    """Claims become leases (backend/execution/queue.py): the worker holding a run, until when, and how many claims it took;
    the store gets an id so two store folders never share one server catalog."""
    db.execute(text("ALTER TABLE runs ADD COLUMN worker_id TEXT"))
    db.execute(text("ALTER TABLE runs ADD COLUMN lease_expires_at TEXT"))
    db.execute(text("ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0"))
    db.execute(text("INSERT INTO store_meta(key, value) VALUES ('store_id', :v)"), {"v": uuid.uuid4().hex})


@migration
def m008_token_confidence(db: Connection) -> None:
    """Shard layout 5: samples gain `token_confidence` (per generated token, DeepConf's confidence in one byte), what
    the confidence-aware selection rules read; shards written before read it as NULL and those rules say so."""
    db.execute(text("UPDATE store_meta SET value = '5' WHERE key = 'shard_schema_version'"))


@migration
def m009_allocations(db: Connection) -> None:
    """Shard layout 6: a table of adaptive allocation decisions (`allocations`); stores without one read it empty."""
    db.execute(text("UPDATE store_meta SET value = '6' WHERE key = 'shard_schema_version'"))


@migration
def m010_question_key(db: Connection) -> None:
    """Shard layout 7: samples, questions and nodes carry `question_key`, the question's identity by content (ids are
    positions within a run, so two runs with other knobs reuse them for other questions). Stored shards are re-keyed
    on read, not rewritten: a questions row computes its key from its content (store/schema.READ_AS), and a sample
    or node without one takes its run's questions row's (store/schema.KEYED_BY_QUESTIONS); `ttc store compact`
    writes the keys into the merged shards."""
    db.execute(
        text("UPDATE store_meta SET value = '7' WHERE key = 'shard_schema_version' AND CAST(value AS INTEGER) < 7")
    )


@migration
def m011_token_confidence_range(db: Connection) -> None:
    """Shard layout 8: samples.token_confidence takes two bytes per token (uint16, the same 1/16-nat steps), a range
    that holds DeepConf's confidence over every log-probability the engines report (one byte saturated at 15.9
    nats); layout 5-7 shards read as uint16 (store/schema.READ_AS), their values unchanged."""
    db.execute(
        text("UPDATE store_meta SET value = '8' WHERE key = 'shard_schema_version' AND CAST(value AS INTEGER) < 8")
    )


@migration
def m012_score_pass_tokens(db: Connection) -> None:
    """Shard layout 9: scores gain the pass's token counts (`verifier_prompt_tokens`, `verifier_cached_tokens`,
    `verifier_completion_tokens`) and nodes the prompt tokens their ledger charged as cached
    (`ledger_cached_tokens`) and each verifier pass charged to them (`verifier_pass_prompt_tokens`,
    `verifier_pass_cached_tokens`, `verifier_pass_completion_tokens`: lists, one entry per pass), and pool scoring charges the idealised prefix cache instead of the engine's
    cache report. Rows written before read the counts as NULL: their `verifier_flops` is the old rule's and cannot be
    re-priced without the judge's token count, so the compute-optimal study says how many it uses and how to
    re-score them (README, "What is stored")."""
    db.execute(
        text("UPDATE store_meta SET value = '9' WHERE key = 'shard_schema_version' AND CAST(value AS INTEGER) < 9")
    )


@migration
def m013_imports(db: Connection) -> None:
    """Runs imported from other tools' logs (`ttc import`, backend/importers): their provenance (the format, each
    file's SHA-256, the importer's version, the options) and the content hash that makes a second import of the
    same files a no-op. Such a run's status is `imported`: no worker ever claims it."""
    db.execute(
        text(
            """
            CREATE TABLE imports (
                run_id TEXT PRIMARY KEY,
                content_hash TEXT NOT NULL UNIQUE,
                format TEXT NOT NULL,
                importer_version TEXT NOT NULL,
                files_json TEXT NOT NULL,      -- [{"path", "sha256", "bytes"}] in the order given
                options_json TEXT NOT NULL,
                imported_at TEXT NOT NULL
            )
            """
        )
    )


@migration
def m014_served_labels(db: Connection) -> None:
    """Labels a user gives served requests' answers (`ttc serve`, the Serving page): one row per (request run,
    choice), correct 1 or 0. A user's edit, so a catalog table (as `imports`), not a shard: it changes in place and
    a label removed is a row deleted; a request without a row is unlabelled."""
    db.execute(
        text(
            """
            CREATE TABLE served_labels (
                run_id TEXT NOT NULL,
                choice INTEGER NOT NULL,
                correct INTEGER NOT NULL,     -- 1 | 0
                labelled_at TEXT NOT NULL,
                PRIMARY KEY (run_id, choice)
            )
            """
        )
    )


@migration
def m015_trace_confidence(db: Connection) -> None:
    """Shard layout 10: samples gain `trace_confidence`, each trace's confidence (DeepConf's lowest group confidence,
    backend/metrics/confidence.trace_confidence) computed from its token confidences when the sample is written, so
    loading a pool for the confidence rules reads one number per sample instead of every token's. Shards written
    before read it as NULL and a pool load computes it from their token confidences, as it always did."""
    db.execute(
        text("UPDATE store_meta SET value = '10' WHERE key = 'shard_schema_version' AND CAST(value AS INTEGER) < 10")
    )


def apply_migrations(db: Connection) -> list[str]:
    """Apply the pending migrations in order, each in the caller's transaction; return their names. Concurrent
    callers (workers starting together on a server catalog) migrate one after the other."""
    lock_for_migrations(db)
    db.execute(text("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"))
    done = {row[0] for row in db.execute(text("SELECT name FROM _migrations"))}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        fn(db)
        db.execute(
            text("INSERT INTO _migrations(name, applied_at) VALUES (:n, :t)"),
            {"n": name, "t": datetime.now(UTC).isoformat()},
        )
        applied.append(name)
    return applied
