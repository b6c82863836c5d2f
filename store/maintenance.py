"""Keeping a store fast and intact for months: compaction, and the check and repair of damaged shards.

Compaction. Every flush of a worker is a new shard (about one a second), and a query opens every footer, so a
store that is never merged slows down as it grows. `compact_run` merges a run's live shards into one
`compacted-<time>-<uuid>.parquet` per table whose footer lists the files it replaces, published like any shard
(temp name, fsync, rename). From that rename on, readers (`Store.shards`) skip the replaced files; they are deleted
only after `GRACE_S`, longer than any reader holds a listing, by `purge_replaced`. A crash at any point leaves
either the old shards alone, or the merge plus files that every reader already ignores: nothing is lost or counted
twice. One compaction at a time per store (an exclusive lock file), so two never merge the same shards.

Check and repair. `check` reads every shard whole and the catalog, and lists what is wrong; `repair` moves
unreadable shards to `DIR/quarantine/` (out of every reader's sight), removes stale temp files and replaced shards,
and re-queues the runs that lost rows: their missing samples, scores and nodes are regenerated with the same
seeds, by a worker or by running the spec again."""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text

import store.catalog as catalogs
from store.catalog import integrity_problem
from store.keys import QUESTION_KEY_SQL
from store.schema import KEYED_BY_QUESTIONS, TABLES
from store.store import (
    COMPACTED_PREFIX,
    QUARANTINE_DIR,
    REPLACES_KEY,
    Store,
    duckdb_type,
    lacks_values,
    live_names,
    publish,
    replaced_by,
    shard_names,
)

GRACE_S = 30.0
"""Replaced shards outlive their merge by this long: a reader that listed them just before the merge appeared
still finds them (the dashboard's slowest page reads for a few seconds)."""

STALE_TEMP_S = 600.0
"""A temp shard older than this belongs to a writer that died (a live one renames it within a second)."""

KEYS: dict[str, tuple[str, ...]] = {
    "samples": ("run_id", "model", "question_id", "sample_idx"),
    "questions": ("run_id", "question_id"),
    "scores": ("run_id", "model", "question_id", "sample_idx", "verifier"),
    "nodes": ("run_id", "model", "strategy", "config", "question_id", "node_id"),
    "allocations": ("run_id", "model", "round", "question_id"),
}
"""Each table's row identity: a healthy store holds every key once."""

MERGE_BATCH_ROWS = 100_000
"""Rows per record batch (and row group) of a merged shard."""

SORT: dict[str, str] = {
    "samples": "model, question_id, sample_idx",
    "questions": "question_id",
    "scores": "model, verifier, question_id, sample_idx",
    "nodes": "model, strategy, config, question_id, node_id",
    "allocations": "model, round, question_id",
}
"""Row order of a merged shard: a question's rows together, which is how every metric reads them."""


@dataclass
class Compaction:
    run_id: str
    merged: dict[str, int] = field(default_factory=dict)  # table -> shards merged into one
    rows: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.merged:
            return f"run {self.run_id}: already compact"
        parts = ", ".join(f"{t} {n} shards -> 1 ({self.rows[t]} rows)" for t, n in self.merged.items())
        return f"run {self.run_id}: {parts}"


@contextmanager
def store_lock(store: Store, name: str = "maintenance") -> Iterator[None]:
    """An exclusive lock on the store for one maintenance job (held by the OS: a killed holder releases it)."""
    path = store.root / f".{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def compact_run(store: Store, run_id: str) -> Compaction:
    """Merge each table's live shards of one run into one file (see the module's docstring for why it is safe)."""
    result = Compaction(run_id)
    with store_lock(store):
        for table in TABLES:
            folder = store.root / table / run_id
            names = shard_names(folder)
            live = live_names(folder, names)
            unkeyed = table in KEYED_BY_QUESTIONS and any(lacks_values(str(folder / n), "question_key") for n in live)
            if len(live) > 1 or unkeyed:  # one shard without question keys is rewritten with them
                result.merged[table] = len(live)
                result.rows[table] = _merge(table, folder, names, live)
    return result


def _merge(table: str, folder: Path, names: list[str], live: list[str]) -> int:
    """Write the merge of `live` as one compacted shard replacing every file in `names`; returns its row count."""
    schema = TABLES[table]
    source = "read_parquet([" + ", ".join(_sql_str(str(folder / n)) for n in live) + "], union_by_name=true)"
    con = duckdb.connect()
    try:
        present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        # every column of the current layout, stored values as they are (READ_AS still applies on read)
        source = _with_question_keys(table, folder, live, source, present)
        cols = ", ".join(
            f.name if f.name in present else f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in schema
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        final = folder / f"{COMPACTED_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        # the footer lists every file present: the merged ones and any an earlier merge already replaced
        out_schema = schema.with_metadata({REPLACES_KEY: json.dumps(names).encode()})

        def write(tmp: Path) -> None:
            batches = con.sql(f"SELECT {cols} FROM {source} ORDER BY {SORT[table]}").to_arrow_reader(MERGE_BATCH_ROWS)
            with pq.ParquetWriter(tmp, out_schema, compression="zstd") as out:
                for batch in batches:  # streamed: a run larger than memory merges too
                    out.write_batch(batch.cast(schema))

        publish(final, write)
        return pq.read_metadata(final).num_rows
    finally:
        con.close()


def _with_question_keys(table: str, folder: Path, live: list[str], source: str, present: set[str]) -> str:
    """The merge's source with the question keys of rows written before layout 7 filled in from the run's
    questions (store/schema.KEYED_BY_QUESTIONS), so a compacted store reads without the join; `present` gains the
    column."""
    if table not in KEYED_BY_QUESTIONS or not any(lacks_values(str(folder / n), "question_key") for n in live):
        return source
    qfolder = folder.parent.parent / "questions" / folder.name
    qlive = live_names(qfolder, shard_names(qfolder))
    if not qlive:
        return source
    questions = "read_parquet([" + ", ".join(_sql_str(str(qfolder / n)) for n in qlive) + "], union_by_name=true)"
    con = duckdb.connect()
    try:
        have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {questions}").fetchall()}
    finally:
        con.close()
    content = ", ".join(
        c if c in have else f"NULL::VARCHAR AS {c}" for c in ("task", "dataset", "question", "reference")
    )
    stored = "question_key" if "question_key" in have else "NULL::VARCHAR"
    keys = (
        f"SELECT run_id, question_id, any_value(coalesce(stored, {QUESTION_KEY_SQL})) AS question_key "
        f"FROM (SELECT run_id, question_id, {content}, {stored} AS stored FROM {questions}) GROUP BY ALL"
    )
    star, own = ("t.* EXCLUDE (question_key)", "t.question_key") if "question_key" in present else ("t.*", "NULL")
    present.add("question_key")
    return (
        f"(SELECT {star}, coalesce({own}, k.question_key) AS question_key FROM {source} t "
        f"LEFT JOIN ({keys}) k ON k.run_id = t.run_id AND k.question_id = t.question_id)"
    )


def purge_replaced(store: Store, min_age_s: float = GRACE_S, run_id: str | None = None) -> int:
    """Delete shards that a compacted shard replaced at least `min_age_s` ago; returns how many."""
    removed = 0
    now = time.time()
    for table in TABLES:
        base = store.root / table
        folders = [base / run_id] if run_id else sorted(p for p in base.glob("*") if p.is_dir())
        for folder in folders:
            names = shard_names(folder)
            for n in names:
                if not n.startswith(COMPACTED_PREFIX):
                    continue
                path = folder / n
                try:
                    age = now - path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age < min_age_s:
                    continue
                for old in replaced_by(str(path)):
                    if old != n and (folder / old).exists():
                        (folder / old).unlink(missing_ok=True)
                        removed += 1
    return removed


def finished_runs(store: Store) -> list[str]:
    """Runs no worker is writing: compacting a running one would merge shards that keep coming."""
    with store.catalog.connect() as db:
        rows = db.execute(text("SELECT run_id FROM runs WHERE status NOT IN ('running', 'queued') ORDER BY created_at"))
        return [r[0] for r in rows]


# ---- check and repair -----------------------------------------------------------------------------------------
@dataclass
class Problem:
    kind: str  # unreadable | duplicate | stale-temp | catalog
    path: str
    detail: str
    run_id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass
class Report:
    shards: int = 0
    rows: int = 0
    replaced_pending: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def _read_whole(path: Path, schema: pa.Schema) -> str | None:
    """None if the shard reads whole with known columns of known types, else why not."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        if not path.exists():
            return None  # replaced and purged while we looked: not a problem
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    for f in table.schema:
        if f.name not in schema.names:
            return f"unknown column {f.name!r}"
        if not table.schema.field(f.name).type.equals(schema.field(f.name).type):
            return f"column {f.name!r} is {f.type}, expected {schema.field(f.name).type}"
    return None


def check(store: Store) -> Report:
    """Read every shard whole, look for duplicate keys, stale temp files and a damaged catalog."""
    report = Report()
    now = time.time()
    readable: dict[str, list[Path]] = {}
    for table, schema in TABLES.items():
        base = store.root / table
        for folder in sorted(p for p in base.glob("*") if p.is_dir()):
            for tmp in folder.glob(".*.tmp"):
                if now - tmp.stat().st_mtime > STALE_TEMP_S:
                    report.problems.append(Problem("stale-temp", str(tmp), "left by a writer that died", folder.name))
            names = shard_names(folder)
            live = live_names(folder, names)
            report.replaced_pending += len(names) - len(live)
            for n in live:
                path = folder / n
                report.shards += 1
                why = _read_whole(path, schema)
                if why is not None:
                    report.problems.append(Problem("unreadable", str(path), why, folder.name))
                elif path.exists():
                    readable.setdefault(table, []).append(path)
    con = duckdb.connect()
    try:
        for table, paths in readable.items():
            files = "[" + ", ".join(_sql_str(str(p)) for p in paths) + "]"
            key = ", ".join(KEYS[table])
            report.rows += int(
                con.execute(f"SELECT count(*) FROM read_parquet({files}, union_by_name=true)").fetchall()[0][0]
            )
            dups = con.execute(
                f"SELECT run_id, count(*) - count(DISTINCT ({key})) AS n FROM read_parquet({files}, union_by_name=true) "
                "GROUP BY run_id HAVING n > 0"
            ).fetchall()
            for run_id, n in dups:
                report.problems.append(
                    Problem("duplicate", str(store.root / table / run_id), f"{n} rows repeat a key ({key})", run_id)
                )
    finally:
        con.close()
    with store.catalog.connect() as db:
        verdict = integrity_problem(db)
    if verdict is not None:
        report.problems.append(Problem("catalog", store.catalog_shown, verdict))
    return report


@dataclass
class Repair:
    quarantined: list[str] = field(default_factory=list)
    temps_removed: int = 0
    replaced_removed: int = 0
    requeued: list[str] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)


def repair(store: Store) -> Repair:
    """Quarantine unreadable shards, drop stale temps and replaced shards, and re-queue the runs that lost rows."""
    out = Repair()
    with store_lock(store):
        report = check(store)
        lost_runs: set[str] = set()
        for p in report.problems:
            path = Path(p.path)
            if p.kind == "unreadable":
                rel = path.relative_to(store.root)
                dest = store.root / QUARANTINE_DIR / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                dest.with_name(dest.name + ".why").write_text(p.detail + "\n")
                out.quarantined.append(str(rel))
                if p.run_id:
                    lost_runs.add(p.run_id)
            elif p.kind == "stale-temp":
                path.unlink(missing_ok=True)
                out.temps_removed += 1
            else:
                out.unrepaired.append(p)
        out.replaced_removed = purge_replaced(store)
    with store.catalog.begin() as db:
        now = catalogs.now(db)
        for run_id in sorted(lost_runs):
            changed = db.execute(
                text(
                    "UPDATE runs SET status='queued', error=NULL, cancel_requested=0, updated_at=:now "
                    "WHERE run_id=:r AND status IN ('done', 'failed', 'cancelled')"
                ),
                {"r": run_id, "now": now},
            ).rowcount
            if changed:
                out.requeued.append(run_id)
    return out
