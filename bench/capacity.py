"""The two limits of a study at scale that are not the model: catalog claims per second and store writes per second.

Claims. Queues `--runs` runs, then `--workers` worker processes (each with its own catalog connections, as separate
`ttc worker` processes have) claim runs with the worker's own `claim_next` (spec parsed, lease taken) and mark
each done, until the queue is empty. The reference is one worker on the same backend in the same process. Every
run must end done with exactly one claim. PostgreSQL: a throwaway server from Debian's binaries (tests/postgres.py),
or `--catalog URL1,URL2` for yours (two empty databases).

Writes. `--workers` processes each publish `--shards` sample shards of 256 rows (a 400-character prompt, a
1,500-character completion: a MATH-style sample) into one store, as workers sharing a store do; the reference is
one writer. Measured on this machine's local disk: shared storage adds its own latency per rename and fsync.

    python -m bench.capacity [--runs 2000] [--workers 8] [--shards 40]

Prints `RESULT backend=<b> workers=<n> claims_per_s=<x> one_worker_claims_per_s=<y> ratio=<x/y>` per backend and
`RESULT store_writes workers=<n> rows_per_s=<x> shards_per_s=<x> one_writer_rows_per_s=<y> ratio=<x/y>`."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.config import parse_spec  # noqa: E402
from backend.execution.queue import claim_next  # noqa: E402
from store import Store  # noqa: E402

SPEC = dict(models=["gemma-3-270m"], task=dict(kind="humaneval", size=1), samples_per_question=1)


def _queue(root: Path, catalog: str | None, n: int, offset: int) -> None:
    store = Store.open(root, catalog=catalog)
    for i in range(n):
        spec = parse_spec(SPEC | {"name": f"c{offset + i}", "seed": offset + i})
        store.upsert_run(spec.run_id(), spec.name, spec.model_dump(mode="json"), 1, "queued")


def _claimer(root: str, catalog: str | None, k: int, start, counts) -> None:
    store = Store.open(root, create=False, catalog=catalog)
    holder = f"bench-{os.getpid()}-{k}"
    start.wait()
    n = 0
    while (spec := claim_next(store, holder)) is not None:
        store.finish_run(spec.run_id(), "done", holder=holder)
        n += 1
    counts[k] = n


def _timed_processes(target, args: tuple, workers: int) -> tuple[float, int]:
    """Start `workers` processes of `target(*args, k, start, counts)`, release them together, and return the wall
    time until the last one exits and the sum of what they counted."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(workers + 1)
    counts = ctx.Array("i", workers)
    procs = [ctx.Process(target=target, args=(*args, k, start, counts)) for k in range(workers)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit(f"a {target.__name__} process failed: exit codes {[p.exitcode for p in procs]}")
    return wall, sum(counts)


def _round(root: Path, catalog: str | None, workers: int) -> tuple[float, int]:
    return _timed_processes(_claimer, (str(root), catalog), workers)


def _check(root: Path, catalog: str | None, expected: int) -> None:
    store = Store.open(root, create=False, catalog=catalog)
    runs = store.runs_arrow().to_pylist()
    bad = [r["run_id"] for r in runs if r["status"] != "done" or r["attempts"] != 1]
    if len(runs) != expected or bad:
        raise SystemExit(f"exactly-once broken: {len(runs)} runs, {len(bad)} not done once: {bad[:5]}")


def bench(name: str, catalogs: dict[int, str | None], runs: int, tmp: Path) -> None:
    """One round per worker count in `catalogs` (each on its own empty catalog: None is a new store's SQLite)."""
    results = {}
    for w, catalog in catalogs.items():
        root = tmp / f"{name}-{w}"
        t0 = time.perf_counter()
        _queue(root, catalog, runs, 0)
        print(f"{name}: {runs} runs queued in {time.perf_counter() - t0:.1f} s", flush=True)
        wall, claimed = _round(root, catalog, w)
        _check(root, catalog, runs)
        results[w] = claimed / wall
        print(f"{name}: {w} worker(s) claimed {claimed} runs in {wall:.2f} s: {results[w]:.0f} claims/s", flush=True)
    one, many = min(results), max(results)
    print(
        f"RESULT backend={name} workers={many} claims_per_s={results[many]:.0f} "
        f"one_worker_claims_per_s={results[one]:.0f} ratio={results[many] / results[one]:.2f}",
        flush=True,
    )


ROWS_PER_SHARD = 256


def _writer(root: str, shards: int, k: int, start, out) -> None:
    import pyarrow as pa

    from store.schema import TABLES

    store = Store.open(root, create=False)
    rows = [
        {f.name: None for f in TABLES["samples"]}
        | {
            "run_id": f"w{k}",
            "model": "m",
            "question_id": f"q{i // 16}",
            "sample_idx": i % 16,
            "prompt": "p" * 400,
            "completion": "c" * 1500,
            "completion_tokens": 400,
            "flops": 1e12,
        }
        for i in range(ROWS_PER_SHARD)
    ]
    table = pa.Table.from_pylist(rows, schema=TABLES["samples"])
    start.wait()
    for _ in range(shards):
        store.write_shard("samples", f"w{k}", table)
    out[k] = shards


def writes(workers: int, shards: int, tmp: Path) -> None:
    results = {}
    for w in (1, workers):
        root = tmp / f"writes-{w}"
        Store.open(root)
        wall, published = _timed_processes(_writer, (str(root), shards), w)
        written = Store.open(root, create=False).query("SELECT count(*) AS n FROM samples")["n"][0]
        if written != w * shards * ROWS_PER_SHARD:
            raise SystemExit(f"store writes: {written} rows read back, {w * shards * ROWS_PER_SHARD} written")
        results[w] = (published / wall, written / wall)
        print(f"store writes: {w} writer(s) published {published} shards in {wall:.2f} s", flush=True)
    one, many = results[1], results[workers]
    print(
        f"RESULT store_writes workers={workers} rows_per_s={many[1]:.0f} shards_per_s={many[0]:.1f} "
        f"one_writer_rows_per_s={one[1]:.0f} ratio={many[1] / one[1]:.2f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--shards", type=int, default=40, help="shards each writer publishes")
    ap.add_argument(
        "--catalog", default=None, help="two empty PostgreSQL databases, URL1,URL2 (default: a throwaway server)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ttc-capacity-") as tmp:
        writes(args.workers, args.shards, Path(tmp))
        bench("sqlite", {1: None, args.workers: None}, args.runs, Path(tmp))
        server = None
        if args.catalog:
            first, second = args.catalog.split(",")
        else:
            from tests.postgres import start_server

            server = start_server()
            os.environ["PGPASSWORD"] = server.password
            first, second = server.url(server.create_database()), server.url(server.create_database())
        try:
            bench("postgresql", {1: first, args.workers: second}, args.runs, Path(tmp))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
