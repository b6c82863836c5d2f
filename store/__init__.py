"""The store: Parquet shards read through DuckDB, plus a SQLite catalog of runs (see store/store.py)."""

from store.store import Store, default_store_dir

__all__ = ["Store", "default_store_dir"]
