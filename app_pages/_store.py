"""The store the dashboard reads (from $TTC_STORE), and its cached queries and pools.

Caching: a store only grows by new immutable shards, so the listing of shard files (count, newest mtime) is a
complete fingerprint of its content. Every cached query and metric takes that fingerprint as an argument:
results are reused until a worker writes a shard, then recomputed, with no explicit invalidation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from backend.metrics.pools import KEY_OR_LABEL_SQL
from store import Store
from store.catalog import is_store
from store.schema import TABLES
from store.store import default_store_dir

CACHE_TTL_S = 3600


def store_dir() -> Path:
    return default_store_dir().expanduser().resolve()


@st.cache_resource(show_spinner=False)
def cached_store(root: str) -> Store:
    """One read handle per store folder for the whole dashboard process (a `Store` opens a fresh DuckDB connection
    per query, so sharing it is safe)."""
    return Store.open(root, create=False)


def open_store(create: bool = False) -> Store | None:
    """The store at $TTC_STORE; None when there is none yet (unless `create`)."""
    root = store_dir()
    if not is_store(root):
        if not create:
            return None
        Store.open(root, create=True)
    return cached_store(str(root))


def fingerprint(store: Store) -> tuple:
    """(file count, newest mtime) per table over the shard files: changes exactly when a shard is added."""
    out = []
    for table in TABLES:
        count, newest = 0, 0
        base = store.root / table
        if base.is_dir():
            for run in os.scandir(base):
                if not run.is_dir():
                    continue
                for f in os.scandir(run.path):
                    if f.name.endswith(".parquet") and not f.name.startswith("."):
                        count += 1
                        newest = max(newest, f.stat().st_mtime_ns)
        out.append((table, count, newest))
    return tuple(out)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=256)
def _cached_query(root: str, fp: tuple, sql: str, params: tuple) -> pd.DataFrame:
    return cached_store(root).query(sql, list(params))


def query(store: Store, sql: str, params: Sequence = ()) -> pd.DataFrame:
    """A read query over the shards, cached until the store changes."""
    return _cached_query(str(store.root), fingerprint(store), sql, tuple(params))


@st.cache_data(ttl=2, show_spinner=False)
def _runs(root: str) -> pd.DataFrame:
    return cached_store(root).runs_arrow().to_pandas()


def runs(store: Store) -> pd.DataFrame:
    """The catalog's runs (status changes without new shards, so a short TTL instead of the fingerprint)."""
    return _runs(str(store.root))


def sample_groups(store: Store) -> pd.DataFrame:
    """One row per (run, model, dataset, strategy) with sample and question counts: the choices pages offer."""
    return query(
        store,
        f"""SELECT run_id, model, dataset, strategy, count(*) AS samples,
                  count(DISTINCT {KEY_OR_LABEL_SQL}) AS questions
           FROM samples GROUP BY ALL ORDER BY run_id, model, dataset, strategy""",
    )


def default_runs(store: Store):
    """The comparable selection the analysis pages start from, and what it leaves out (backend/run_selection.py)."""
    from backend.execution.allocation import ADAPTIVE_SQL
    from backend.run_selection import RUN_QUESTIONS_SQL
    from backend.run_selection import default_runs as rule

    questions = query(store, RUN_QUESTIONS_SQL)
    adaptive = query(store, ADAPTIVE_SQL, [questions["run_id"].tolist()])["run_id"].tolist()
    return rule(questions, runs(store), adaptive)


def has_samples(store: Store | None) -> bool:
    return store is not None and fingerprint(store)[0][1] > 0


# ---- pools and metrics (cached; computed by backend.metrics) -----------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=16, ttl=CACHE_TTL_S)
def cached_pool(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    dataset: str | None,
    strategy: str | None,
):
    """The pool of (runs, model, dataset, strategy), loaded once per shard fingerprint `fp` and shared by every page:
    with the trace confidences the confidence rules read, one stored number per sample (shards written before layout
    10 compute them from their token confidences, once)."""
    from backend.metrics.pools import load_pool

    con = cached_store(root).connect()
    try:
        return load_pool(con, list(run_ids), model, dataset=dataset, strategy=strategy)
    finally:
        con.close()


@st.cache_resource(show_spinner=False, max_entries=8, ttl=CACHE_TTL_S)  # each holds every draw's votes: megabytes
def cached_selection_curves(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    dataset: str | None,
    strategy: str | None,
    verifier: str | None,
    draws: int,
) -> dict:
    """backend.metrics.selection_curves of a cached pool on its default k grid, once per shard fingerprint `fp`: the
    Strategies and Cost-of-pass pages draw the same curves (one in accuracy, one in dollars), so the one that opens
    second reads them here. `verifier` must be one of the pool's (or None). Read-only: shared, never copied."""
    from backend.metrics.selection import selection_curves

    pool = cached_pool(root, fp, run_ids, model, dataset, strategy)
    return selection_curves(pool, verifier, draws=draws)
