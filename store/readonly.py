"""`ttc sql`: a user's own SQL over the store, read-only by construction.

The query is raw SQL on purpose (it is the store's query console), so it cannot be parameterised; instead it runs
on a fresh in-memory DuckDB (`Store.connect`: views over the shards, a copy of the catalog's runs) where

- only one read statement is accepted (SELECT and what DuckDB parses as one: WITH, FROM-first, VALUES, DESCRIBE,
  SHOW, SUMMARIZE; and EXPLAIN): COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CREATE, INSERT, ... are refused before
  anything runs;
- file access is limited to the store's shard folders and then locked, so not even a SELECT reads or writes
  another file (`read_csv('/etc/passwd')`, an extension's writer) or the catalog's SQLite file.

Nothing a query does can reach the shards or the catalog: the connection is discarded afterwards."""

from __future__ import annotations

import duckdb
import pandas as pd

from store.errors import StoreError
from store.schema import TABLES
from store.store import Store, vanished_shard

READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
ALLOWED = "one read-only query: SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN"


def read_only_query(store: Store, sql: str) -> pd.DataFrame:
    """Run one read statement of the user's over the store; anything else is a StoreError naming what is allowed.
    A shard that a compaction removed under the query means a newer listing exists: it is retried once on it."""
    for attempt in (1, 2):
        try:
            return _read_once(store, sql)
        except duckdb.IOException as e:
            if attempt == 2 or not vanished_shard(str(e), store.root):
                raise store.read_failed(e) from None
    raise AssertionError("unreachable")


def _read_once(store: Store, sql: str) -> pd.DataFrame:
    con = store.connect()
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as e:
            raise StoreError(f"query failed: {str(e).splitlines()[0]}") from None
        if not statements:
            raise StoreError(f"SQL: the query is empty; allowed: {ALLOWED}")
        if len(statements) > 1:
            raise StoreError(f"SQL: {len(statements)} statements; allowed: {ALLOWED}")
        kind = statements[0].type
        if kind not in READ_STATEMENTS:
            raise StoreError(f"SQL: {kind.name} is not a read statement; allowed: {ALLOWED}")
        con.execute("SET allowed_directories = $1", [[f"{store.root / table}/" for table in TABLES]])
        con.execute("SET autoinstall_known_extensions = false")  # sqlite_scan('catalog.sqlite') would fetch one
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            return con.execute(statements[0]).df()
        except duckdb.IOException:
            raise  # a vanished shard: read_only_query retries, or names it
        except duckdb.Error as e:
            raise store.read_failed(e) from None
    finally:
        con.close()
