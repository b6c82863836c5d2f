"""The catalog: runs (the job queue), workers and the store's metadata, in a database reached through SQLAlchemy.

Two backends, one schema (the named migrations of store/migrations.py apply to both):

- SQLite, the default: `DIR/catalog.sqlite` inside the store, WAL mode, every write transaction `BEGIN IMMEDIATE`
  (one writer at a time, so a claim is atomic). Right for one machine.
- PostgreSQL, chosen with `--catalog postgresql://USER@HOST[:PORT]/DB` or `$TTC_CATALOG_URL`: a server that workers
  on several machines share; claims take row locks with `FOR UPDATE SKIP LOCKED`, so concurrent workers never
  wait on each other's claims. The store folder then holds `catalog.url` (the URL without its password), so the
  dashboard and every later command find the catalog without being told; the password comes from the environment
  (`$TTC_CATALOG_URL`, `PGPASSWORD` or `~/.pgpass`) and is never written anywhere.

Time on the catalog is the database's clock where there is a server (leases compare times written by different
machines, whose clocks may drift), and this machine's clock for SQLite (one machine)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from store.errors import StoreError

SQLITE_FILE = "catalog.sqlite"
POINTER_FILE = "catalog.url"
"""In a store whose catalog is on a server: JSON {"url": URL without password, "store_id": ...}."""
CATALOG_ENV = "TTC_CATALOG_URL"
ALLOWED = "postgresql://USER@HOST[:PORT]/DATABASE (password from $TTC_CATALOG_URL, PGPASSWORD or ~/.pgpass)"
SERVED = "served"
"""`runs.name` of a request `ttc serve` answered (backend/serving/runtime.py), and the dataset of its question: the
readers that group served traffic or leave it out of analysis pools (backend/run_selection.py) go by it."""
_MIGRATION_LOCK = 741_500_015
"""PostgreSQL advisory lock key held while migrating, so two workers starting at once migrate one after the other."""


def parse_catalog_url(value: str, field: str = "--catalog") -> URL:
    """A PostgreSQL URL, normalised to the psycopg driver; anything else is refused with what is allowed."""
    try:
        url = make_url(value.strip())
    except ArgumentError:
        raise StoreError(f"{field}: {value!r} is not a database URL; allowed: {ALLOWED}") from None
    if url.get_backend_name() != "postgresql":
        raise StoreError(
            f"{field}: {url.get_backend_name()!r} catalogs are not supported; allowed: {ALLOWED}, or nothing for the "
            "store's own SQLite file"
        )
    if url.get_driver_name() not in ("psycopg", "psycopg2", ""):
        raise StoreError(f"{field}: driver {url.get_driver_name()!r} is not supported; allowed: {ALLOWED}")
    if not url.database:
        raise StoreError(f"{field}: {shown(url)} names no database; allowed: {ALLOWED}")
    if url.query:
        raise StoreError(f"{field}: {shown(url)} has query parameters; allowed: {ALLOWED}")
    return url.set(drivername="postgresql+psycopg")


def shown(url: URL) -> str:
    """The URL as it may be printed or stored: never with its password."""
    return url.set(drivername=url.get_backend_name())._replace(password=None).render_as_string(hide_password=False)


def _same_place(a: URL, b: URL) -> bool:
    return (a.host, a.port or 5432, a.database, a.username) == (b.host, b.port or 5432, b.database, b.username)


def resolve(root: Path, given: str | None, create: bool) -> URL | None:
    """The catalog a store uses: None for its SQLite file, else the server URL (with the password the caller gave).
    A store is bound to one catalog: a URL that disagrees with the store's pointer, or a server URL for a store
    that has its own SQLite catalog, is refused (it would be a second, empty queue)."""
    field = "--catalog" if given is not None else f"${CATALOG_ENV}"
    raw = given if given is not None else os.environ.get(CATALOG_ENV) or None
    url = parse_catalog_url(raw, field) if raw else None
    pointer = read_pointer(root)
    if pointer is not None:
        recorded = parse_catalog_url(pointer["url"], f"{root / POINTER_FILE}")
        if url is None:
            return recorded
        if not _same_place(url, recorded):
            raise StoreError(
                f"{field}: store {root} keeps its catalog at {shown(recorded)}, not {shown(url)}; allowed: that URL, "
                "or none (the store's catalog.url is used)"
            )
        return url
    if url is not None and (root / SQLITE_FILE).exists():
        raise StoreError(
            f"{field}: store {root} has its own SQLite catalog ({SQLITE_FILE}); allowed: no catalog URL for this "
            "store, or a new store directory for a PostgreSQL catalog"
        )
    if url is not None and not create and not (root / SQLITE_FILE).exists():
        raise StoreError(f"store: {root} is not a ttc store (no {SQLITE_FILE} or {POINTER_FILE}); run a spec first")
    return url


def read_pointer(root: Path) -> dict | None:
    path = root / POINTER_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        raise StoreError(f"store: {path} is unreadable ({e}); it should hold the store's catalog URL") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise StoreError(f"store: {path} is not a catalog pointer (JSON with a 'url'); restore it or remove it")
    return data


def pointer_text(url: URL, store_id: str) -> str:
    """The body of a store's catalog pointer: where its catalog is (no password) and which store it serves."""
    return json.dumps({"url": shown(url), "store_id": store_id}, indent=1) + "\n"


def is_store(root: Path) -> bool:
    return (root / SQLITE_FILE).is_file() or (root / POINTER_FILE).is_file()


def open_engine(root: Path, url: URL | None) -> Engine:
    return _sqlite_engine(root / SQLITE_FILE) if url is None else _postgres_engine(url)


def _sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let us emit BEGIN IMMEDIATE ourselves
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "handle_error")
    def _on_error(context):
        # a full disk or a file-size limit: the same one line as a shard that cannot be written
        problem = str(context.original_exception)
        if any(s in problem for s in ("disk is full", "disk I/O error", "database or disk")):
            raise StoreError(
                f"store: the catalog {path} could not be written ({problem}); free space, then run it again: "
                "every shard already written is kept"
            ) from None

    return engine


def _postgres_engine(url: URL) -> Engine:
    try:
        import psycopg  # noqa: F401 - only to say how to install it
    except ImportError:
        raise StoreError(
            f"--catalog: a PostgreSQL catalog needs the psycopg driver; install it with pip install 'ttc-lab[postgres]' "
            f"(catalog {shown(url)})"
        ) from None
    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10, "application_name": "ttc-lab"})

    @event.listens_for(engine, "handle_error")
    def _on_error(context):
        if context.is_disconnect or context.connection is None:  # refused, unknown host, bad password, server gone
            first = str(context.original_exception).strip().splitlines()[0] if str(context.original_exception) else ""
            raise StoreError(
                f"store: cannot reach the catalog {shown(url)} ({first}); allowed: a running PostgreSQL server and "
                f"a database you can write, as {ALLOWED}"
            ) from None

    return engine


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


def now(db: Connection) -> str:
    """The catalog's time, as ISO-8601 UTC text (the format of every time column)."""
    if db.dialect.name == "postgresql":
        value = db.execute(text("SELECT now()")).scalar_one()
        return value.astimezone(UTC).isoformat()
    return utcnow()


def lock_for_migrations(db: Connection) -> None:
    """Serialise migrations: SQLite's BEGIN IMMEDIATE already does; PostgreSQL needs an advisory lock."""
    if db.dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})


def integrity_problem(db: Connection) -> str | None:
    """SQLite's own check of its file; a server checks its storage itself, so PostgreSQL has nothing to add."""
    if db.dialect.name != "sqlite":
        return None
    verdict = db.execute(text("PRAGMA integrity_check")).scalar()
    return None if verdict == "ok" else str(verdict)
