"""Query time on a store of many small shards, before and after compaction.

A worker flushes a shard about every second, so a store used for months holds tens of thousands of files, and each
query opens every footer. This builds a synthetic store (bench/synthetic_store.py: real schema, real write path),
splits its tables into `--shards` shard files in total as a worker's flushes leave them, then times the reads the
dashboard makes (a fresh connection, the run list, a model's pool for the curves, the Samples page's filtered
browse, one search tree) before and after `compact_run` on every run, in the same process. Each timing is the
median of `--repeats`. Rows read are checked equal before and after.

    python -m bench.compaction [--shards 10000] [--questions 200 --samples 64] [--repeats 5]

Prints one line per query and `RESULT shards=<n> query_s_before=<s> query_s_after=<s> speedup=<x>`
(sums over the queries)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.metrics.pools import load_pool  # noqa: E402
from bench.synthetic_store import make_synthetic_store  # noqa: E402
from store import Store  # noqa: E402
from store.maintenance import compact_run, purge_replaced  # noqa: E402
from store.schema import TABLES  # noqa: E402

SAMPLES_SQL = (
    "SELECT run_id, model, question_id, sample_idx, answer, correct, completion_tokens FROM samples "
    "WHERE run_id = ? AND contains(completion, ?) ORDER BY question_id, sample_idx LIMIT 200"
)


def split(store: Store, total_shards: int) -> int:
    """Rewrite the store's tables as `total_shards` shards, shared out by row count; returns the count written."""
    folders = [f for t in TABLES if (store.root / t).is_dir() for f in (store.root / t).iterdir()]
    rows = {f: pq.read_table(list(f.glob("*.parquet"))) for f in folders}
    sizes = np.array([t.num_rows for t in rows.values()], dtype=float)
    share = total_shards * sizes / sizes.sum()
    pieces = np.maximum(1, np.floor(share)).astype(int)
    for i in np.argsort(pieces - share)[: max(0, total_shards - int(pieces.sum()))]:
        pieces[i] += 1  # largest remainders first, so the pieces add up to the total asked
    written = 0
    for (folder, table), n in zip(rows.items(), pieces):
        for path in folder.glob("*.parquet"):
            path.unlink()
        bounds = np.linspace(0, table.num_rows, min(n, table.num_rows) + 1).astype(int)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            store.write_shard(folder.parent.name, folder.name, table.slice(start, stop - start))
            written += 1
    return written


def queries(store: Store) -> dict:
    runs = store.query("SELECT run_id, spec_json FROM runs")
    run_id = runs["run_id"][0]
    model = store.query("SELECT DISTINCT model FROM samples WHERE run_id = ?", [run_id])["model"][0]
    tree = store.query("SELECT run_id, model, strategy, config, question_id FROM nodes LIMIT 1").iloc[0].tolist()

    def connect():
        store.connect().close()
        return 0

    def run_list():
        return len(store.query("SELECT status, count(*) FROM runs GROUP BY 1"))

    def pool():
        con = store.connect()
        try:
            p = load_pool(con, [run_id], model)
            return int(p.n.sum())
        finally:
            con.close()

    def browse():
        return len(store.query(SAMPLES_SQL, [run_id, "1"]))

    def search_tree():
        return len(
            store.query(
                "SELECT * FROM nodes WHERE run_id=? AND model=? AND strategy=? AND config=? AND question_id=?", tree
            )
        )

    def counts():
        return (
            store.query(
                "SELECT (SELECT count(*) FROM samples) s, (SELECT count(*) FROM scores) c, (SELECT count(*) FROM nodes) n"
            )
            .iloc[0]
            .tolist()
        )

    return {
        "connect": connect,
        "run list": run_list,
        "pool (curves)": pool,
        "samples browse": browse,
        "search tree": search_tree,
        "row counts": counts,
    }


def time_all(store: Store, repeats: int) -> tuple[dict[str, float], dict]:
    timings, answers = {}, {}
    for name, fn in queries(store).items():
        fn()  # warm the OS file cache: both sides are timed warm
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            answers[name] = fn()
            runs.append(time.perf_counter() - t0)
        timings[name] = statistics.median(runs)
    return timings, answers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", type=int, default=10_000)
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = make_synthetic_store(Path(tmp) / "store", n_questions=a.questions, n_samples=a.samples, n_trees=3)
        n = split(store, a.shards)
        print(f"store: {n} shards written in {time.perf_counter() - t0:.1f} s", flush=True)
        before, answers_before = time_all(store, a.repeats)
        t0 = time.perf_counter()
        for run_id in sorted(f.name for f in (store.root / "samples").iterdir()):
            compact_run(store, run_id)
        compact_s = time.perf_counter() - t0
        purge_replaced(store, min_age_s=0)
        left = sum(len(store.shards(t)) for t in TABLES)
        print(f"compaction: {n} shards -> {left} in {compact_s:.1f} s", flush=True)
        after, answers_after = time_all(store, a.repeats)
        assert answers_after == answers_before, "compaction changed what a query returns"
        for name in before:
            print(f"{name:16s} before {before[name] * 1000:9.1f} ms  after {after[name] * 1000:8.1f} ms")
        b, f = sum(before.values()), sum(after.values())
        print(f"RESULT shards={n} query_s_before={b:.3f} query_s_after={f:.3f} speedup={b / f:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
