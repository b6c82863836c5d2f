"""Soak: the dashboard's reads, every 100 ms, while a real worker writes and compacts the same store.

A real `ttc worker` process runs a queue of small real runs (the tiny shipped model on llama.cpp): it flushes a
shard about every second, and each run that finishes is compacted (its shards merged, the replaced ones removed
after their grace period). Meanwhile this process starts a round of every read the dashboard's pages make every
100 ms (the next round starts at once when one takes longer): the run list and the worker table, a running run's
progress, the sample groups the pages offer, the Samples page's filtered browse and its question list, a model's
pool with its coverage and majority-vote curves, the search-tree list, the catalog's runs through DuckDB, and
the shard listing the pages' caches key on. Every query's latency and every error are recorded.

    python -m bench.soak [--seconds 600] [--runs 60]

Prints `RESULT seconds=<s> rounds=<n> queries=<n> errors=<n> p95_ms=<x> max_ms=<x> samples_written=<n>
runs_compacted=<n>`; the goal is errors=0. tests/integration/test_soak.py runs it for 60 seconds."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import streamlit  # noqa: E402, F401 - configures its loggers on import; quieted below

for _name in ("streamlit", "streamlit.runtime.caching.cache_data_api"):
    logging.getLogger(_name).setLevel(logging.ERROR)  # the pages' cached helpers warn outside a Streamlit server
from backend.config import parse_spec  # noqa: E402
from backend.execution.queue import progress, submit  # noqa: E402
from backend.execution.workers import worker_table  # noqa: E402
from backend.metrics.coverage import coverage_curve  # noqa: E402
from backend.metrics.pools import (  # noqa: E402
    QUESTION_IDS_SQL,
    SAMPLES_SQL,
    load_pool,  # noqa: E402
)
from backend.metrics.selection import selection_curves  # noqa: E402
from store import Store  # noqa: E402
from store.schema import TABLES  # noqa: E402


def spec(i: int) -> dict:
    """A small real run: seconds on two cores, so runs finish (and compact) all through the soak."""
    return {
        "name": f"soak-{i}",
        "models": ["gemma-3-270m"],
        "task": {"kind": "reasoning_gym", "datasets": [{"name": "basic_arithmetic", "size": 2}]},
        "samples_per_question": 4,
        "max_tokens": 16,
        "seed": i,
        "engine": {"kind": "llamacpp", "n_parallel": 4},
    }


def dashboard_reads(store: Store) -> dict[str, Callable[[], object]]:
    """Every read the pages make, bypassing Streamlit's cache (a cache hit would measure nothing)."""

    def running_run() -> str | None:
        df = store.query("SELECT run_id FROM runs WHERE status = 'running' LIMIT 1")
        return None if df.empty else str(df["run_id"][0])

    def run_progress():
        run_id = running_run()
        return progress(store, run_id) if run_id else None

    def pool_curves():
        groups = store.query("SELECT run_id, model FROM samples GROUP BY ALL ORDER BY 1 LIMIT 1")
        if groups.empty:
            return None
        con = store.connect()
        try:
            pool = load_pool(con, [groups["run_id"][0]], groups["model"][0])
        finally:
            con.close()
        return coverage_curve(pool, n_boot=50), selection_curves(pool, None, draws=4, n_boot=50)

    def shard_listing():
        return [len(store.shards(t)) for t in TABLES]

    return {
        "runs": lambda: store.runs_arrow().num_rows,
        "workers": lambda: worker_table(store),
        "progress": run_progress,
        "sample groups": lambda: store.query(
            "SELECT run_id, model, dataset, strategy, count(*) AS samples, count(DISTINCT question_id) AS questions "
            "FROM samples GROUP BY ALL ORDER BY ALL"
        ),
        "samples browse": lambda: store.query(SAMPLES_SQL, [None, None, None, None, "1", 200]),
        "question ids": lambda: store.query(QUESTION_IDS_SQL, [None, None]),
        "pool + curves": pool_curves,
        "trees": lambda: store.query("SELECT DISTINCT run_id, model, strategy, config, question_id FROM nodes"),
        "runs (sql)": lambda: store.query("SELECT status, count(*) FROM runs GROUP BY 1"),
        "shard listing": shard_listing,
    }


@dataclass
class SoakResult:
    seconds: float
    rounds: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    samples_written: int = 0
    runs_compacted: int = 0
    runs_done: int = 0

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else float("nan")

    def line(self) -> str:
        return (
            f"RESULT seconds={self.seconds:.0f} rounds={self.rounds} queries={len(self.latencies_ms)} "
            f"errors={len(self.errors)} p95_ms={self.p95_ms:.1f} max_ms={max(self.latencies_ms, default=0):.1f} "
            f"samples_written={self.samples_written} runs_compacted={self.runs_compacted}"
        )


def soak(
    store_dir: Path,
    seconds: float,
    n_runs: int,
    period_s: float = 0.1,
    min_compacted: int = 0,
    deadline_s: float | None = None,
    log=print,
) -> SoakResult:
    """Queue `n_runs`, start a worker on them, read for `seconds` (and on, up to `deadline_s`, until the worker has
    compacted `min_compacted` runs: a soak that never raced a compaction proves little), stop the worker."""
    store = Store.open(store_dir)
    for i in range(n_runs):
        submit(store, parse_spec(spec(i)))
    worker = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker", "--store", str(store.root)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(store.root / "worker.log", "ab"),
        start_new_session=True,
    )
    reads = dashboard_reads(store)
    result = SoakResult(seconds)
    try:
        start = time.monotonic()
        next_round = start
        deadline = start + max(seconds, deadline_s or seconds)

        def compacted() -> int:
            return len({p.parent.name for p in (store.root / "samples").glob("*/compacted-*.parquet")})

        while time.monotonic() < deadline and (
            time.monotonic() - start < seconds or (min_compacted and compacted() < min_compacted)
        ):
            for name, read in reads.items():
                t0 = time.perf_counter()
                try:
                    read()
                except Exception as e:  # noqa: BLE001 - every failure is a finding, recorded with its query
                    result.errors.append(f"{name}: {type(e).__name__}: {e}")
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.rounds += 1
            if result.rounds % 600 == 0:
                log(f"{time.monotonic() - start:.0f} s: {result.rounds} rounds, {len(result.errors)} errors")
            next_round += period_s
            time.sleep(max(0.0, next_round - time.monotonic()))
            next_round = max(next_round, time.monotonic())
        if worker.poll() is not None:
            result.errors.append(f"the worker exited early with code {worker.returncode}")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    counts = store.query("SELECT status, count(*) AS n FROM runs GROUP BY 1")
    result.runs_done = int(counts.loc[counts["status"] == "done", "n"].sum())
    result.samples_written = int(store.query("SELECT count(*) AS n FROM samples")["n"][0])
    result.runs_compacted = compacted()
    result.seconds = time.monotonic() - start
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--runs", type=int, default=60, help="runs queued for the worker (more than it can finish)")
    p.add_argument("--store", type=Path, default=None, help="store directory (default: a temporary one)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(a.store or Path(tmp) / "store", a.seconds, a.runs)
    for err in result.errors[:20]:
        print(f"error: {err}")
    print(f"runs done: {result.runs_done}, samples written: {result.samples_written}")
    print(result.line())
    return 0 if not result.errors else 1


if __name__ == "__main__":
    os.environ.setdefault("TTC_LLAMA_VERBOSITY", "0")
    raise SystemExit(main())
