"""`ttc import` at scale: a synthetic pool in the Large Language Monkeys layout (one YAML file per problem with
`prompt`, `question`, `samples`, `gt_answer`, `is_corrects`, as llmonk writes and grades it; Brown et al. 2024),
by default 100 problems × 10,000 samples = 1M samples, imported into a fresh store through the real code path
(backend.importers.ingest.import_files, what `ttc import monkeys` calls).

Each import runs in a child process, so its peak RSS (os.wait4's ru_maxrss) counts the import alone, not the
generator. The reference is the same import at 1/`--reference-fraction` of the problems, in the same run: a
throughput ratio near 1 says the import scales linearly, and a peak RSS that does not grow with the problems says
it streams (one problem's YAML document at a time, rows flushed to Parquet in batches).

    nice -n 19 python -m bench.import                       # 100 × 10,000
    python -m bench.import --questions 4 --samples 50       # smoke
    python -m bench.import --profile 2> profile.txt         # and where the full import's time goes

Prints per import `RESULT import questions=… samples=… seconds=… cpu_s=… samples_per_s=… peak_rss_mb=…` (cpu_s:
the import's own CPU time, which a machine shared with other work does not inflate as it does seconds), then
`RESULT scaling samples_per_s_ratio=… peak_rss_ratio=…` (full over reference) and, last,
`RESULT samples_per_s=… peak_rss_mb=…` of the full import.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRONG_SHARE = 0.6  # roughly Monkeys' gsm8k pool with a small model: most samples wrong, most problems solved


def write_pool(folder: Path, questions: int, samples: int, seed: int = 0) -> list[Path]:
    """`questions` YAML files of `samples` samples each, in llmonk's block layout (keys sorted, as yaml.dump
    writes them); strings are JSON-quoted, which YAML reads as double-quoted scalars."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for q in range(questions):
        truth = int(rng.integers(10, 1000))
        p = rng.beta(0.6, 1.2)
        correct = rng.random(samples) < p
        wrong = truth + rng.integers(1, 50, samples) * np.where(rng.random(samples) < 0.5, -1, 1)
        answers = np.where(correct, truth, wrong)
        steps = rng.integers(2, 6, samples)
        lines = [
            f"gt_answer: {json.dumps(f'The total is {truth}. #### {truth}')}",
            "is_corrects:",
            *("- true" if c else "- false" for c in correct),
            f"prompt: {json.dumps(f'Question: problem {q}: how many apples in all?' + chr(10) + 'Answer:')}",
            f"question: {json.dumps(f'problem {q}: how many apples in all?')}",
            "samples:",
            *(
                "- "
                + json.dumps(
                    f"Let's think step by step. There are {s} groups of apples to add. "
                    + " ".join(f"Step {j + 1}: add {a % (j + 7)} apples to the running total." for j in range(s))
                    + f"\nThe total is {a}. #### {a}"
                )
                for s, a in zip(steps.tolist(), answers.tolist())
            ),
        ]
        path = folder / f"{q}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def child(store: Path, paths: list[Path], profile: bool = False) -> None:
    """The import itself, in its own process: prints its samples and seconds as JSON (and, `profile`, where the
    time went: cProfile's top functions by cumulative time, on stderr; the profiler slows the import)."""
    from backend.importers.ingest import import_files
    from store import Store

    opened = Store.open(store)
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if profiler:
        profiler.enable()
    result = import_files(opened, "monkeys", paths, model="synthetic", options={"dataset": "synthetic"})
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(json.dumps({"samples": result.samples, "questions": result.questions, "seconds": seconds, "cpu_s": cpu}))


def measure(work: Path, paths: list[Path], tag: str, profile: bool = False) -> dict:
    """Import `paths` in a child process; its result and its peak RSS (MB)."""
    store = work / f"store-{tag}"
    listing = work / f"paths-{tag}.txt"
    listing.write_text("\n".join(map(str, paths)))
    cmd = [
        sys.executable,
        "-m",
        "bench.import",
        "--child",
        str(store),
        str(listing),
        *(["--profile"] if profile else []),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"the {tag} import failed (exit {proc.returncode})")
    got = json.loads(out.decode().strip().splitlines()[-1])
    got["peak_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    got["samples_per_s"] = got["samples"] / got["seconds"]
    return got


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--reference-fraction", type=int, default=10, help="the reference imports 1/this of the problems")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the pool and stores (default: a temp dir)")
    ap.add_argument(
        "--profile", action="store_true", help="profile the full import (cProfile, on stderr; it runs slower)"
    )
    ap.add_argument("--child", nargs=2, type=Path, metavar=("STORE", "PATHS_FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        store, listing = args.child
        child(store, [Path(p) for p in listing.read_text().splitlines()], args.profile)
        return
    work = Path(tempfile.mkdtemp(prefix="ttc-import-bench-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        paths = write_pool(work / "llmonk", args.questions, args.samples)
        size_mb = sum(p.stat().st_size for p in paths) / 2**20
        print(
            f"pool: {args.questions} problems × {args.samples} samples, {size_mb:.0f} MB of YAML, "
            f"written in {time.perf_counter() - t0:.1f} s"
        )
        ref_n = max(1, args.questions // args.reference_fraction)
        results = {}
        for tag, chosen in (("reference", paths[:ref_n]), ("full", paths)):
            r = results[tag] = measure(work, chosen, tag, args.profile and tag == "full")
            print(
                f"RESULT import={tag} questions={r['questions']} samples={r['samples']} seconds={r['seconds']:.3f} "
                f"cpu_s={r['cpu_s']:.3f} samples_per_s={r['samples_per_s']:.0f} peak_rss_mb={r['peak_rss_mb']:.1f}"
            )
        full, ref = results["full"], results["reference"]
        print(
            f"RESULT scaling samples_per_s_ratio={full['samples_per_s'] / ref['samples_per_s']:.3f} "
            f"peak_rss_ratio={full['peak_rss_mb'] / ref['peak_rss_mb']:.3f}"
        )
        print(f"RESULT samples_per_s={full['samples_per_s']:.0f} peak_rss_mb={full['peak_rss_mb']:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
