"""How far a re-run of a study moves its reading: every figure `ttc report` prints, from two stores of the same spec.

llama.cpp serves a run's parallel slots in shared batches, and which requests share a batch changes the arithmetic,
so a re-run of a spec draws different samples even at the same seeds. This bench puts a number on it: the study
`ttc report` reads from `--reference` (e.g. the committed examples/studies/compute-optimal) against the same study
in `--store`. With `--spec`, the spec is first run into `--store` by `ttc run` (resumed if it is there), timed.

Compared, each as the report computes it (backend/report.py, `open_study` at `--n-bins`):
- every configuration's accuracy over all questions at each budget (the report's last table), cell by cell, on the
  configurations and budgets both stores hold (budgets matched by rank: both are 1, 2, 4 samples' FLOPs); apart,
  the largest move of a pool rule (an expectation over the pool's k-subsets) and of a search (one run per question);
- the cross-validated policy's held-out accuracy per bin and budget, and the configuration it chose there;
- the headline (the policy against the baseline over all questions at the largest budget): both differences, and
  whether their signs and their verdicts at α = 0.05 agree;
- the pool's share of samples cut at max_tokens, and each study's wall time.

    python -m bench.rerun --reference examples/studies/compute-optimal --store DIR [--spec SPEC] [--n-bins 4]

Prints one line per configuration cell, then `RESULT cells=<n> max_abs_diff=<x> mean_abs_diff=<y>
pool_max_abs_diff=<x> search_max_abs_diff=<x> policy_max_abs_diff=<z> headline_reference=<d> headline_rerun=<d> same_sign=<0|1> same_verdict=<0|1>
choices_same=<k> choices=<n> cut_share_reference=<s> cut_share_rerun=<s> wall_min_reference=<m>
wall_min_rerun=<m>`."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.report import open_study, study_record  # noqa: E402
from store import Store  # noqa: E402


@dataclass(frozen=True)
class Reading:
    """The figures of one store's study that the comparison needs."""

    cells: pd.Series  # accuracy by (configuration, budget rank), every configuration over all questions
    kinds: dict[str, str]  # configuration -> "pool" (an expectation over the pool's subsets) | "search" (one run)
    policy: pd.DataFrame  # by (bin, budget rank): held_out_accuracy, chosen (fold 0 / fold 1)
    headline: pd.Series  # the report's "all" row at the largest budget
    cut_share: float
    wall_min: float


def reading(path: Path, n_bins: int) -> Reading:
    store = Store.open(path, create=False)
    con = store.connect()
    try:
        opened = open_study(con, store.root, n_bins=n_bins)
        record = study_record(con, opened.runs, opened.study.model)
    finally:
        con.close()
    study = opened.study
    rank = {b: i for i, b in enumerate(sorted(study.table.budget_samples))}
    cells = study.table.cells()
    cells = cells.assign(budget=cells["budget_samples"].map(rank)).set_index(["configuration", "budget"])["accuracy"]
    report = study.report()
    report = report.assign(
        budget=report["budget_samples"].map(rank),
        chosen=report["chosen_fold0"].fillna("") + " / " + report["chosen_fold1"].fillna(""),
    )
    quality = record.quality.table
    cut = float(quality["cut"].sum() / quality["samples"].sum()) if not quality.empty else float("nan")
    return Reading(
        cells=cells,
        kinds=dict(zip(study.table.configurations, study.table.kind)),
        policy=report.set_index(["bin", "budget"])[["held_out_accuracy", "chosen"]],
        headline=report[report["bin"] == "all"].sort_values("budget_flops").iloc[-1],
        cut_share=cut,
        wall_min=(record.wall_s or float("nan")) / 60,
    )


def run_spec(spec: Path, store: Path) -> float:
    """`ttc run SPEC --store DIR` as a user types it (resumes what is stored); its wall time in minutes."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "backend.cli", "run", str(spec), "--store", str(store)], cwd=ROOT, check=True)
    return (time.perf_counter() - start) / 60


def _max(values: pd.Series) -> float:
    return float(values.max()) if len(values) else float("nan")


def compare(a: Reading, b: Reading) -> dict[str, float]:
    both = pd.concat({"reference": a.cells, "rerun": b.cells}, axis=1, join="inner")
    diff = (both["rerun"] - both["reference"]).abs()
    kind = np.asarray([a.kinds.get(name, "") for name, _ in both.index])
    for (name, budget), row in both.iterrows():
        print(f"cell {name} @ budget#{budget}: {row['reference']:.3f} -> {row['rerun']:.3f}")
    policy = a.policy.add_suffix("_reference").join(b.policy.add_suffix("_rerun"), how="inner")
    moved = (policy["held_out_accuracy_rerun"] - policy["held_out_accuracy_reference"]).abs()
    ha, hb = a.headline, b.headline
    return {
        "cells": len(both),
        "max_abs_diff": float(diff.max()) if len(diff) else float("nan"),
        "mean_abs_diff": float(diff.mean()) if len(diff) else float("nan"),
        "pool_max_abs_diff": _max(diff[kind == "pool"]),
        "search_max_abs_diff": _max(diff[kind == "search"]),
        "policy_max_abs_diff": float(moved.max()) if len(moved) else float("nan"),
        "headline_reference": float(ha["vs_baseline_difference"]),
        "headline_rerun": float(hb["vs_baseline_difference"]),
        "same_sign": int(np.sign(ha["vs_baseline_difference"]) == np.sign(hb["vs_baseline_difference"])),
        "same_verdict": int(bool(ha["vs_baseline_significant"]) == bool(hb["vs_baseline_significant"])),
        "choices_same": int((policy["chosen_reference"] == policy["chosen_rerun"]).sum()),
        "choices": len(policy),
        "cut_share_reference": a.cut_share,
        "cut_share_rerun": b.cut_share,
        "wall_min_reference": a.wall_min,
        "wall_min_rerun": b.wall_min,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", type=Path, required=True, help="the store of the study as first run")
    p.add_argument("--store", type=Path, required=True, help="the store of the re-run")
    p.add_argument("--spec", type=Path, help="run this spec into --store first (ttc run; resumed if stored)")
    p.add_argument("--n-bins", type=int, default=4)
    args = p.parse_args(argv)
    if args.spec is not None:
        print(f"ttc run {args.spec} --store {args.store}: {run_spec(args.spec, args.store):.1f} min", flush=True)
    result = compare(reading(args.reference, args.n_bins), reading(args.store, args.n_bins))
    print("RESULT " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
