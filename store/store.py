"""The store: every sample, question, verifier score and search node of every run, under one directory.

Why Parquet shards and not one DuckDB file: DuckDB lets one process hold a database file read-write and then
refuses every other process, even read-only (DESIGN.md §2). The dashboard must read while workers write, several
workers may run, and a killed worker must lose nothing and duplicate nothing. So:

- workers append immutable Parquet shards, `DIR/<table>/<run_id>/<time>-<uuid>.parquet`, each written to a
  hidden temp name, fsynced and atomically renamed: a reader sees a whole shard or none;
- readers get a fresh in-process DuckDB connection whose views read the shards (`read_parquet`, union by name,
  so older shards read newer columns as NULL): any number of readers, no locks, always up to date;
- runs and their states (the job queue) live in a small SQLite catalog through SQLAlchemy (WAL mode, immediate
  transactions), migrated by named migrations (store/migrations.py);
- a sample's identity (run_id, model, question_id, sample_idx) makes resumption exact: a restarted worker asks
  which keys exist and generates only the rest.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine as SqlEngine

from backend.errors import StoreError
from store.migrations import apply_migrations
from store.schema import READ_AS, SHARD_SCHEMA_VERSION, TABLES

CATALOG_FILE = "catalog.sqlite"


HEARTBEAT_STALE_S = 15.0
"""A worker (and the run it holds) whose last heartbeat is older than this is gone: its run may be claimed again."""


def default_store_dir() -> Path:
    return Path(os.environ.get("TTC_STORE") or Path.home() / ".local" / "share" / "ttc-lab" / "store")


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


def _sqlite_engine(path: Path) -> SqlEngine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let us emit BEGIN IMMEDIATE ourselves
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Store:
    """Open with `Store.open(dir)` (creates and migrates) or `Store.open(dir, create=False)` (read side)."""

    def __init__(self, root: Path, catalog: SqlEngine):
        self.root = root
        self.catalog = catalog

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, create: bool = True) -> Store:
        root = Path(root) if root is not None else default_store_dir()
        root = root.expanduser().resolve()
        catalog_path = root / CATALOG_FILE
        if not create:
            if not catalog_path.is_file():
                raise StoreError(
                    f"store: {root} is not a ttc store (no {CATALOG_FILE}); run `ttc run SPEC --store {root}` first"
                )
        else:
            check_writable(root)
        store = cls(root, _sqlite_engine(catalog_path))
        if create:
            with store.catalog.begin() as db:
                apply_migrations(db)
        with store.catalog.connect() as db:
            written = db.execute(text("SELECT value FROM store_meta WHERE key = 'shard_schema_version'")).scalar()
        if written is not None and int(written) > SHARD_SCHEMA_VERSION:
            raise StoreError(
                f"store: {root} was written by a newer ttc-lab (shard layout {written}, this one reads up to "
                f"{SHARD_SCHEMA_VERSION}); upgrade ttc-lab to use it"
            )
        return store

    # ---- writing shards -------------------------------------------------------------------------------------
    def write_shard(self, table: str, run_id: str, rows: pa.Table) -> Path | None:
        """Append rows as one immutable shard (temp name, fsync, atomic rename, fsync dir)."""
        if rows.num_rows == 0:
            return None
        rows = rows.cast(TABLES[table]) if rows.schema != TABLES[table] else rows
        folder = self.root / table / run_id
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(rows, tmp, compression="zstd")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = folder / name
        os.replace(tmp, final)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final

    def remove_stale_temp_files(self, run_id: str) -> int:
        """Temp shards of a killed writer are garbage (never renamed, so never read): delete them."""
        n = 0
        for table in TABLES:
            for tmp in (self.root / table / run_id).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                n += 1
        return n

    # ---- reading --------------------------------------------------------------------------------------------
    def shard_glob(self, table: str) -> str:
        return str(self.root / table / "*" / "*.parquet")

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB with views `samples`, `questions`, `scores`, `nodes` over the shards and a
        `runs` table copied from the catalog. Cheap: open one per query batch."""
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")  # it would print into the dashboard server's log
        for table, schema in TABLES.items():
            shards = list((self.root / table).glob("*/*.parquet"))
            if shards:
                source = f"read_parquet('{self.shard_glob(table)}', union_by_name=true)"
                present = _shard_columns(con, source, shards)
                # a column added after every shard of this store was written reads as NULL (schema.py's rule)
                missing = "".join(
                    f", CAST(NULL AS {_duckdb_type(f.type)}) AS {f.name}" for f in schema if f.name not in present
                )
                view = f"SELECT *{missing} FROM {source}"
                if READ_AS.get(table):  # a column whose stored form changed: every shard reads in the current form
                    replace = ", ".join(f"{expr} AS {col}" for col, expr in READ_AS[table].items())
                    view = f"SELECT * REPLACE ({replace}) FROM ({view})"
                con.execute(f"CREATE VIEW {table} AS {view}")
            else:
                empty = schema.empty_table()  # noqa: F841 - referenced by name below
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM empty")
        runs = self.runs_arrow()  # noqa: F841
        con.execute("CREATE TABLE runs AS SELECT * FROM runs")
        return con

    def query(self, sql: str, params: list | None = None):
        """Run one read query; returns a pandas DataFrame. SQL errors become StoreError."""
        con = self.connect()
        try:
            return con.execute(sql, params or []).df()
        except duckdb.Error as e:
            raise StoreError(f"query failed: {str(e).splitlines()[0]}") from None
        finally:
            con.close()

    def existing_sample_keys(self, run_id: str, model: str) -> set[tuple[str, int]]:
        df = self.query("SELECT question_id, sample_idx FROM samples WHERE run_id = ? AND model = ?", [run_id, model])
        return set(zip(df["question_id"], df["sample_idx"].astype(int)))

    def has_questions(self, run_id: str) -> bool:
        return any((self.root / "questions" / run_id).glob("*.parquet"))

    # ---- the catalog ----------------------------------------------------------------------------------------
    def runs_arrow(self) -> pa.Table:
        with self.catalog.connect() as db:
            rows = db.execute(text("SELECT * FROM runs ORDER BY created_at")).mappings().all()
        cols = [
            "run_id",
            "name",
            "spec_json",
            "status",
            "total_samples",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "worker_pid",
            "worker_host",
            "cancel_requested",
            "error",
        ]
        types = {"total_samples": pa.int64(), "worker_pid": pa.int64(), "cancel_requested": pa.int64()}
        return pa.table({c: pa.array([r[c] for r in rows], type=types.get(c, pa.string())) for c in cols})

    def get_run(self, run_id: str) -> dict | None:
        with self.catalog.connect() as db:
            row = db.execute(text("SELECT * FROM runs WHERE run_id = :r"), {"r": run_id}).mappings().first()
        return dict(row) if row else None

    def upsert_run(self, run_id: str, name: str, spec: dict, total_samples: int, status: str) -> None:
        now = utcnow()
        with self.catalog.begin() as db:
            db.execute(
                text(
                    """
                    INSERT INTO runs(run_id, name, spec_json, status, total_samples, created_at, updated_at)
                    VALUES (:r, :n, :s, :st, :t, :now, :now)
                    ON CONFLICT(run_id) DO UPDATE SET status = :st, total_samples = :t, updated_at = :now,
                        error = NULL, cancel_requested = 0
                    """
                ),
                {
                    "r": run_id,
                    "n": name,
                    "s": json.dumps(spec, sort_keys=True),
                    "st": status,
                    "t": total_samples,
                    "now": now,
                },
            )

    def claim_run(self, run_id: str, pid: int) -> None:
        now = utcnow()
        with self.catalog.begin() as db:
            db.execute(
                text(
                    "UPDATE runs SET status='running', worker_pid=:p, worker_host=:h, started_at=COALESCE(started_at, :now),"
                    " heartbeat_at=:now, updated_at=:now WHERE run_id=:r"
                ),
                {"p": pid, "h": socket.gethostname(), "now": now, "r": run_id},
            )

    def heartbeat(self, run_id: str) -> bool:
        """Refresh the heartbeat; returns True if a cancel was requested."""
        now = utcnow()
        with self.catalog.begin() as db:
            db.execute(text("UPDATE runs SET heartbeat_at=:now WHERE run_id=:r"), {"now": now, "r": run_id})
            row = db.execute(text("SELECT cancel_requested FROM runs WHERE run_id=:r"), {"r": run_id}).first()
        return bool(row and row[0])

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        now = utcnow()
        with self.catalog.begin() as db:
            db.execute(
                text(
                    "UPDATE runs SET status=:s, error=:e, finished_at=:now, updated_at=:now, heartbeat_at=:now WHERE run_id=:r"
                ),
                {"s": status, "e": error, "now": now, "r": run_id},
            )

    def request_cancel(self, run_id: str) -> None:
        with self.catalog.begin() as db:
            db.execute(
                text("UPDATE runs SET cancel_requested=1, updated_at=:now WHERE run_id=:r"),
                {"now": utcnow(), "r": run_id},
            )


_COLUMNS: dict[str, tuple[tuple[int, int], frozenset[str]]] = {}


def _shard_columns(con: duckdb.DuckDBPyConnection, source: str, shards: list[Path]) -> frozenset[str]:
    """The columns some shard of a table has (reading every footer), remembered until a shard is added."""
    key = (len(shards), max(p.stat().st_mtime_ns for p in shards))
    hit = _COLUMNS.get(source)
    if hit is None or hit[0] != key:
        hit = (key, frozenset(r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()))
        _COLUMNS[source] = hit
    return hit[1]


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.list_(pa.float64()): "DOUBLE[]",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def _duckdb_type(t: pa.DataType) -> str:
    try:
        return _DUCKDB_TYPES[t]
    except KeyError:
        raise TypeError(f"no DuckDB type for shard column type {t}; add it to _DUCKDB_TYPES") from None


def check_writable(root: Path) -> None:
    """Fail before writing anything if the store directory cannot be created or written."""
    probe_dir = root
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise StoreError(
            f"--store: {root} cannot be created ({probe_dir} is not a directory); allowed: a writable directory"
        )
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise StoreError(f"--store: {root} is not writable ({probe_dir} denies writing); allowed: a writable directory")
    if root.exists() and any(root.iterdir()) and not (root / CATALOG_FILE).exists():
        raise StoreError(
            f"--store: {root} is a non-empty directory that is not a ttc store; allowed: an empty or new directory, or an existing store"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StoreError(f"--store: {root} is not writable ({e.strerror}); allowed: a writable directory") from None
