"""The store: Parquet shards read through DuckDB, plus a catalog of runs (SQLite in the store, or a PostgreSQL server;
see store/store.py and store/catalog.py)."""

from store.store import Store, default_store_dir

__all__ = ["Store", "default_store_dir"]
