"""The store: every sample, question, verifier score and search node of every run, under one directory.

Why Parquet shards and not one DuckDB file: DuckDB lets one process hold a database file read-write and then
refuses every other process, even read-only (docs/ARCHITECTURE.md, "The store"). The dashboard must read while
workers write, several workers may run, and a killed worker must lose nothing and duplicate nothing. So:

- workers append immutable Parquet shards, `DIR/<table>/<run_id>/<time>-<uuid>.parquet`, each written to a
  hidden temp name, fsynced and atomically renamed: a reader sees a whole shard or none;
- a finished run's shards are merged into one `compacted-*.parquet` per table (store/maintenance.py) that names
  the shards it replaces in its footer: readers skip those from the moment it exists, and they are deleted only
  later, so a reader sees either the shards or their merge, never both or neither;
- readers get a fresh in-process DuckDB connection whose views read the live shards (`read_parquet`, union by
  name, so older shards read newer columns as NULL): any number of readers, no locks, always up to date;
- runs and their states (the job queue) live in a small catalog through SQLAlchemy: the store's own SQLite file (WAL
  mode, immediate transactions) or a PostgreSQL server shared by several machines (store/catalog.py), migrated by
  named migrations (store/migrations.py);
- a sample's identity (run_id, model, question_id, sample_idx) makes resumption exact: a restarted worker asks
  which keys exist and generates only the rest.
"""

from __future__ import annotations

import errno
import json
import os
import re
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.engine import Engine as SqlEngine

import store.catalog as catalogs
import store.leases as leases
from store.errors import StoreError
from store.migrations import apply_migrations
from store.schema import KEYED_BY_QUESTIONS, READ_AS, SHARD_SCHEMA_VERSION, TABLES
from store.views import VIEWS

CATALOG_FILE = catalogs.SQLITE_FILE
COMPACTED_PREFIX = "compacted-"
REPLACES_KEY = b"ttc.replaces"
"""Footer key of a compacted shard: the JSON list of file names (in its run's folder) whose rows it holds."""
QUARANTINE_DIR = "quarantine"
"""Where `ttc store repair` moves unreadable shards (outside every table's folder, so no reader sees them)."""


HEARTBEAT_STALE_S = 15.0
"""A worker (and the run it holds) whose last heartbeat is older than this is gone: its run may be claimed again."""


def default_store_dir() -> Path:
    return Path(os.environ.get("TTC_STORE") or Path.home() / ".local" / "share" / "ttc-lab" / "store")


class Store:
    """Open with `Store.open(dir)` (creates and migrates) or `Store.open(dir, create=False)` (read side); `catalog`
    (or $TTC_CATALOG_URL) puts the catalog on a PostgreSQL server (store/catalog.py)."""

    def __init__(self, root: Path, catalog: SqlEngine | None, catalog_url: URL | None = None):
        self.root = root
        self._catalog = catalog
        self.catalog_url = catalog_url
        """None: the store's own SQLite file. Else the server's URL, with the password it was opened with."""
        self._fences: dict[str, Callable[[], None]] = {}

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, create: bool = True, catalog: str | None = None) -> Store:
        root = Path(root) if root is not None else default_store_dir()
        root = root.expanduser().resolve()
        url = catalogs.resolve(root, catalog, create)
        if not create and url is None and not (root / CATALOG_FILE).is_file():
            raise StoreError(
                f"store: {root} is not a ttc store (no {CATALOG_FILE}); run `ttc run SPEC --store {root}` first"
            )
        if create:
            check_writable(root)
        store = cls(root, catalogs.open_engine(root, url), url)
        applied: list[str] = []
        if create:
            with store.catalog.begin() as db:
                applied = apply_migrations(db)
        with store.catalog.connect() as db:
            meta: dict[str, str] = {k: v for k, v in db.execute(text("SELECT key, value FROM store_meta")).all()}
        written = meta.get("shard_schema_version")
        if written is not None and int(written) > SHARD_SCHEMA_VERSION:
            raise StoreError(
                f"store: {root} was written by a newer ttc-lab (shard layout {written}, this one reads up to "
                f"{SHARD_SCHEMA_VERSION}); upgrade ttc-lab to use it"
            )
        if url is not None:
            store._bind_server_catalog(url, meta.get("store_id", ""), fresh="m001_runs" in applied)
        return store

    @classmethod
    def shard_writer(cls, root: str | os.PathLike) -> Store:
        """A handle that reads and writes shards only, with no catalog (an engine replica on a Ray node, which
        never needs the queue nor its password)."""
        return cls(Path(root).expanduser().resolve(), None)

    @property
    def catalog(self) -> SqlEngine:
        if self._catalog is None:
            raise StoreError(f"store: this handle on {self.root} writes shards only; it has no catalog")
        return self._catalog

    def _bind_server_catalog(self, url: URL, store_id: str, fresh: bool) -> None:
        """One server catalog serves one store folder: the folder's pointer names the catalog's store id."""
        pointer = catalogs.read_pointer(self.root)
        if pointer is None:
            if not fresh:
                raise StoreError(
                    f"--catalog: {catalogs.shown(url)} already holds the queue of another store (id {store_id}); "
                    "allowed: that store's folder, or an empty database for this one"
                )
            body = catalogs.pointer_text(url, store_id)
            publish(self.root / catalogs.POINTER_FILE, lambda tmp: Path(tmp).write_text(body))
        elif pointer.get("store_id") != store_id:
            raise StoreError(
                f"--catalog: {catalogs.shown(url)} holds the queue of store {store_id}, but {self.root} is store "
                f"{pointer.get('store_id')}; allowed: the database this store was created with"
            )

    @property
    def catalog_shown(self) -> str:
        """Where the catalog is, as it may be printed (no password)."""
        return str(self.root / CATALOG_FILE) if self.catalog_url is None else catalogs.shown(self.catalog_url)

    def catalog_env(self) -> dict[str, str]:
        """What a child process (a worker, the dashboard) needs in its environment to open this store's catalog:
        the server URL with its password travels in the environment, never on a command line."""
        if self.catalog_url is None:
            return {}
        return {catalogs.CATALOG_ENV: self.catalog_url.render_as_string(hide_password=False)}

    @contextmanager
    def fenced(self, run_id: str, check: Callable[[], None]):
        """While inside, every shard of `run_id` is written only after `check()` passes (a lease's: a worker whose
        run was taken over by another must not add rows to it)."""
        self._fences[run_id] = check
        try:
            yield
        finally:
            self._fences.pop(run_id, None)

    # ---- writing shards -------------------------------------------------------------------------------------
    def write_shard(self, table: str, run_id: str, rows: pa.Table) -> Path | None:
        """Append rows as one immutable shard (temp name, fsync, atomic rename, fsync dir)."""
        if rows.num_rows == 0:
            return None
        fence = self._fences.get(run_id)
        if fence is not None:
            fence()
        rows = rows.cast(TABLES[table]) if rows.schema != TABLES[table] else rows
        folder = self.root / table / run_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_failed(table, folder, e) from None
        name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        final = folder / name
        try:
            publish(final, lambda tmp: pq.write_table(rows, tmp, compression="zstd"))
        except OSError as e:
            raise write_failed(table, folder, e) from None
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
    def shards(self, table: str) -> list[Path]:
        """The table's live shards: every `*.parquet` of every run folder, less those a compacted shard of the
        same folder replaces. One listing per folder, so a compaction's files are seen together (store/maintenance.py
        deletes replaced shards only after a grace period, longer than any listing takes)."""
        base = self.root / table
        try:
            folders = sorted(e.path for e in os.scandir(base) if e.is_dir())
        except FileNotFoundError:
            return []
        out: list[Path] = []
        for folder in map(Path, folders):
            out.extend(folder / n for n in live_names(folder, shard_names(folder)))
        return out

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB with views `samples`, `questions`, `scores`, `nodes` over the live shards, a
        `runs` table copied from the catalog and the views derived from them (store/views.py). Cheap: open one per query batch. An unreadable shard raises a
        StoreError naming it and the repair command."""
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")  # it would print into the dashboard server's log
            for table in sorted(TABLES, key=lambda t: t != "questions"):  # questions first: others may read its keys
                schema, shards = TABLES[table], self.shards(table)
                if shards:
                    con.read_parquet([str(p) for p in shards], union_by_name=True).create_view(f"_{table}_shards")
                    present = _shard_columns(con, table, shards)
                    # a column added after every shard of this store was written reads as NULL (schema.py's rule)
                    missing = "".join(
                        f", CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in schema if f.name not in present
                    )
                    view = f"SELECT *{missing} FROM _{table}_shards"
                    if READ_AS.get(table):  # a column whose stored form changed: every shard reads in the current form
                        replace = ", ".join(f"{expr} AS {col}" for col, expr in READ_AS[table].items())
                        view = f"SELECT * REPLACE ({replace}) FROM ({view})"
                    if table in KEYED_BY_QUESTIONS and any(lacks_values(str(p), "question_key") for p in shards):
                        view = KEYED_VIEW.format(view=view)  # rows written before layout 7: their run's keys
                    con.execute(f"CREATE VIEW {table} AS {view}")
                else:
                    empty = schema.empty_table()  # noqa: F841 - referenced by name below
                    con.execute(f"CREATE TABLE {table} AS SELECT * FROM empty")
            if self._catalog is not None:  # a shard-only handle (an engine replica) reads shards alone
                runs = self.runs_arrow()  # noqa: F841
                con.execute("CREATE TABLE runs AS SELECT * FROM runs")
                for name, sql in VIEWS.items():  # data_quality, ...
                    con.execute(f"CREATE VIEW {name} AS {sql}")
        except duckdb.Error as e:
            con.close()
            raise self.read_failed(e) from None
        return con

    def query(self, sql: str, params: list | None = None):
        """Run one read query; returns a pandas DataFrame. SQL errors become StoreError. A shard that vanished
        under the query (a compaction's replaced shards are deleted after their grace period) means a newer
        listing exists: the query is retried once on it."""
        for attempt in (1, 2):
            con = self.connect()
            try:
                return con.execute(sql, params or []).df()
            except duckdb.IOException as e:
                if attempt == 1 and vanished_shard(str(e), self.root):
                    continue
                raise self.read_failed(e) from None
            except duckdb.Error as e:
                raise self.read_failed(e) from None
            finally:
                con.close()
        raise AssertionError("unreachable")

    def read_failed(self, e: duckdb.Error) -> StoreError:
        """One line for a failed read: a damaged shard is named, with the commands that find and repair it."""
        first = str(e).splitlines()[0]
        path = _shard_in_message(first, self.root)
        if path is not None and os.path.exists(path):
            return StoreError(
                f"store: shard {path} cannot be read ({first}); run `ttc store check --store {self.root}`, then "
                f"`ttc store repair --store {self.root}` to quarantine it (its run regenerates what it held)"
            )
        return StoreError(f"query failed: {first}")

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
            "worker_id",
            "lease_expires_at",
            "attempts",
        ]
        types = {
            "total_samples": pa.int64(),
            "worker_pid": pa.int64(),
            "cancel_requested": pa.int64(),
            "attempts": pa.int64(),
        }
        # r.get: a catalog opened read-only is not migrated, so an older one lacks the newer columns (NULL)
        return pa.table({c: pa.array([r.get(c) for r in rows], type=types.get(c, pa.string())) for c in cols})

    def get_run(self, run_id: str) -> dict | None:
        with self.catalog.connect() as db:
            row = db.execute(text("SELECT * FROM runs WHERE run_id = :r"), {"r": run_id}).mappings().first()
        return dict(row) if row else None

    def upsert_run(self, run_id: str, name: str, spec: dict, total_samples: int, status: str) -> None:
        with self.catalog.begin() as db:
            now = catalogs.now(db)
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

    def claim_run(self, run_id: str, name: str, spec: dict, total_samples: int, holder: str) -> leases.Lease:
        """Take the run for `holder` (a worker id) in one transaction, recording it first if it is new; refuses with
        RunBusy while another live worker holds it (store/leases.py). A run taken up again after it ended (done,
        failed, cancelled) forgets its old error and cancel request; one taken over from a dead worker keeps a
        cancel the user asked for."""
        with self.catalog.begin() as db:
            now = catalogs.now(db)
            db.execute(
                text(
                    "INSERT INTO runs(run_id, name, spec_json, status, total_samples, created_at, updated_at) "
                    "VALUES (:r, :n, :s, 'queued', :t, :now, :now) ON CONFLICT(run_id) DO NOTHING"
                ),
                {"r": run_id, "n": name, "s": json.dumps(spec, sort_keys=True), "t": total_samples, "now": now},
            )
            was_running = leases.take(db, run_id, holder)
            db.execute(
                text(
                    "UPDATE runs SET name = :n, spec_json = :s, total_samples = :t, error = NULL, "
                    "cancel_requested = CASE WHEN :keep THEN cancel_requested ELSE 0 END WHERE run_id = :r"
                ),
                {
                    "r": run_id,
                    "n": name,
                    "s": json.dumps(spec, sort_keys=True),
                    "t": total_samples,
                    "keep": was_running,
                },
            )
        return leases.Lease(self.catalog, run_id, holder)

    def requeue_run(self, run_id: str, holder: str) -> bool:
        """Give the run back to the queue (its worker is stopping), if `holder` still holds it."""
        with self.catalog.begin() as db:
            now = catalogs.now(db)
            return bool(
                db.execute(
                    text(
                        "UPDATE runs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL, updated_at = :now"
                        " WHERE run_id = :r AND worker_id = :w AND status = 'running'"
                    ),
                    {"r": run_id, "w": holder, "now": now},
                ).rowcount
            )

    def finish_run(self, run_id: str, status: str, error: str | None = None, holder: str | None = None) -> None:
        """Record how the run ended; with `holder`, only if that worker still holds it (one whose run was taken
        over must not overwrite the new holder's state)."""
        with self.catalog.begin() as db:
            now = catalogs.now(db)
            db.execute(
                text(
                    "UPDATE runs SET status = :s, error = :e, finished_at = :now, updated_at = :now, heartbeat_at = :now,"
                    " lease_expires_at = NULL WHERE run_id = :r AND (CAST(:w AS TEXT) IS NULL OR worker_id = :w)"
                ),
                {"s": status, "e": error, "now": now, "r": run_id, "w": holder},
            )

    def request_cancel(self, run_id: str) -> None:
        with self.catalog.begin() as db:
            db.execute(
                text("UPDATE runs SET cancel_requested=1, updated_at=:now WHERE run_id=:r"),
                {"now": catalogs.now(db), "r": run_id},
            )


_COLUMNS: dict[tuple[str, str], tuple[int, frozenset[str]]] = {}


def _shard_columns(con: duckdb.DuckDBPyConnection, table: str, shards: list[Path]) -> frozenset[str]:
    """The columns some shard of a table has (reading every footer), remembered until the set of shards changes."""
    key = (str(shards[0].parent.parent), table)
    listing = hash(tuple(shards))
    hit = _COLUMNS.get(key)
    if hit is None or hit[0] != listing:
        hit = (listing, frozenset(r[0] for r in con.execute(f"DESCRIBE SELECT * FROM _{table}_shards").fetchall()))
        _COLUMNS[key] = hit
    return hit[1]


KEYED_VIEW = """SELECT t.* REPLACE (coalesce(t.question_key, k.question_key) AS question_key) FROM ({view}) t
LEFT JOIN (SELECT run_id, question_id, any_value(question_key) AS question_key FROM questions GROUP BY ALL) k
ON k.run_id = t.run_id AND k.question_id = t.question_id"""
"""A table of KEYED_BY_QUESTIONS read with the keys its older shards lack (a join only while such shards exist)."""


@lru_cache(maxsize=65536)
def lacks_values(path: str, column: str) -> bool:
    """Whether a shard has rows without `column` (absent, or NULL in some row group), from its footer (files never
    change, so the answer is cached)."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return False  # unreadable: the read names it
    at = [j for j in range(meta.num_columns) if meta.schema.column(j).path == column]
    if not at:
        return meta.num_rows > 0
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(at[0]).statistics
        if stats is None or not stats.has_null_count or stats.null_count > 0:
            return True
    return False


@lru_cache(maxsize=4096)
def replaced_by(path: str) -> frozenset[str]:
    """The shard names a compacted shard replaces (its footer; files never change, so the answer is cached)."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException):
        return frozenset()  # unreadable: it replaces nothing, and `ttc store check` names it
    return frozenset(json.loads(meta.get(REPLACES_KEY, b"[]")))


def shard_names(folder: Path) -> list[str]:
    """The Parquet files of one run folder, sorted (temp files excluded), from one listing."""
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(".parquet") and not n.startswith("."))
    except FileNotFoundError:
        return []


def live_names(folder: Path, names: list[str]) -> list[str]:
    """`names` less those a compacted shard among them replaces."""
    replaced: set[str] = set()
    for n in names:
        if n.startswith(COMPACTED_PREFIX):
            replaced |= replaced_by(str(folder / n))
    return [n for n in names if n not in replaced]


_PATH_IN_MESSAGE = re.compile(r"""["']([^"']+\.parquet)["']""")


def _shard_in_message(message: str, root: Path) -> str | None:
    m = _PATH_IN_MESSAGE.search(message)
    return m.group(1) if m and m.group(1).startswith(str(root)) else None


def vanished_shard(message: str, root: Path) -> bool:
    path = _shard_in_message(message, root)
    return path is not None and not os.path.exists(path)


def publish(final: Path, write) -> None:
    """Write a file under a hidden temp name with `write(tmp)`, fsync it, rename it to `final` and fsync the folder:
    a reader sees the whole file or none, and a crash leaves at most a temp file. On failure the temp is removed."""
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_failed(table: str, folder: Path, e: OSError) -> StoreError:
    """A shard that could not be written (full disk, file-size limit, permissions): one line, nothing half-written."""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        hint = "free space (or raise the limit), then run it again: every shard already written is kept"
    else:
        hint = "fix the store directory, then run it again: every shard already written is kept"
    return StoreError(f"store: could not write a {table} shard in {folder}: {reason}; {hint}")


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.list_(pa.float64()): "DOUBLE[]",
    pa.list_(pa.uint8()): "UTINYINT[]",
    pa.list_(pa.uint16()): "USMALLINT[]",
    pa.list_(pa.int32()): "INTEGER[]",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def duckdb_type(t: pa.DataType) -> str:
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
    if root.exists() and any(root.iterdir()) and not catalogs.is_store(root):
        raise StoreError(
            f"--store: {root} is a non-empty directory that is not a ttc store; allowed: an empty or new directory, or an existing store"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # unique per call: threads open stores too
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StoreError(f"--store: {root} is not writable ({e.strerror}); allowed: a writable directory") from None
