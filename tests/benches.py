"""Every bench/*.py at a tiny size: the same script, the same code path, seconds instead of minutes.

`SMOKE` holds one entry per bench: where it runs (`unit`: no model; `real_model`: generates with a shipped model
on CPU; `browser`: drives headless Chromium), the arguments that make it tiny, and the RESULT line(s) it must
print, as full-line patterns. `run` starts `python -m bench.<name>` from the repository root, checks it exits 0
and returns its RESULT lines parsed into numbers. tests/unit/test_benches.py fails when a bench has no entry here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NUM = r"(-?(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?|nan|inf))"
TIERS = ("unit", "real_model", "browser")


@dataclass(frozen=True)
class Smoke:
    tier: str
    args: tuple[str, ...]  # "{tmp}" is replaced by a fresh temporary directory
    results: tuple[str, ...]  # each must fully match one RESULT line; "{n}" stands for a number

    def patterns(self) -> list[re.Pattern]:
        return [re.compile(r.replace("[", r"\[").replace("]", r"\]").replace("{n}", NUM)) for r in self.results]


SMOKE: dict[str, Smoke] = {
    "synthetic_store": Smoke(
        "unit", ("{tmp}/store", "--questions", "4", "--samples", "4"), ("RESULT samples={n} seconds={n}",)
    ),
    "metrics": Smoke(
        "unit",
        ("--questions", "20", "--samples", "16", "--reference-questions", "4", "--reference-bon-questions", "4"),
        (
            "RESULT seconds={n} speedup_vs_reference={n} compute_optimal_view_s={n} "
            "compute_optimal_view_predicted_s={n}",
        ),
    ),
    "page_compute": Smoke(
        "unit",
        ("--questions", "6", "--samples", "12", "--draws", "4"),
        ("RESULT selection_s={n} study_inputs_s={n} votes_speedup_vs_per_k={n} study_votes_speedup_vs_per_k={n}",),
    ),
    "compaction": Smoke(
        "unit",
        ("--shards", "24", "--questions", "6", "--samples", "4", "--repeats", "1"),
        ("RESULT shards={n} query_s_before={n} query_s_after={n} speedup={n}",),
    ),
    "capacity": Smoke(  # PostgreSQL: the test passes two databases of the session's throwaway server (--catalog)
        "unit",
        ("--runs", "6", "--workers", "2", "--shards", "2"),
        (
            "RESULT store_writes workers={n} rows_per_s={n} shards_per_s={n} one_writer_rows_per_s={n} ratio={n}",
            "RESULT backend=sqlite workers={n} claims_per_s={n} one_worker_claims_per_s={n} ratio={n}",
            "RESULT backend=postgresql workers={n} claims_per_s={n} one_worker_claims_per_s={n} ratio={n}",
        ),
    ),
    "adaptive": Smoke(
        "real_model",
        ("--per-level", "2", "--cap", "2", "--max-tokens", "4", "--budgets", "2", "--headline", "2")
        + ("--orders", "2", "--fit-orders", "1", "--boot", "20", "--store", "{tmp}/store"),
        ("RESULT accuracy_gain_at_equal_flops={n} [{n}, {n}] flops_saved_at_equal_accuracy={n} [{n}, {n}]",),
    ),
    "ledger_audit": Smoke(
        "real_model",
        ("--per-level", "1", "--samples", "2", "--max-tokens", "8", "--budgets", "2", "4", "--adaptive-budget", "2")
        + ("--store", "{tmp}/store"),
        ("RESULT mismatches=0 figures={n}",),
    ),
    "forecast": Smoke(  # both pools: the real one at 3 questions x 8 samples of 8 tokens (fit on 4), the synthetic small
        "real_model",
        ("--per-level", "1", "--samples", "8", "--fraction", "2", "--max-tokens", "8", "--store", "{tmp}/store")
        + ("--synthetic-questions", "20", "--synthetic-samples", "64"),
        tuple(
            f"RESULT pool={pool} questions={{n}} samples={{n}} fitted_on={{n}} powerlaw_error={{n}} "
            "distributional_error={n} powerlaw_error_at_n={n} distributional_error_at_n={n} "
            "powerlaw_band_covers_n={n} distributional_band_covers_n={n}"
            for pool in ("real", "synthetic:gemma-3-270m", "synthetic:qwen2.5-coder-0.5b-instruct")
        ),
    ),
    "fanout": Smoke(
        "real_model",
        ("--replicas", "2", "--questions", "1", "--samples", "2", "--max-tokens", "4"),
        ("RESULT local_tokens_per_s={n} ray_tokens_per_s={n} ray_over_local={n}",),
    ),
    "search": Smoke(
        "real_model",
        ("--questions", "1", "--n", "2", "--width", "2", "--rounds", "2", "--step-tokens", "4", "--parallel", "2"),
        ("RESULT calls_per_round={n} prefix_cache_hit={n} ledger_matches_recount=true seconds_per_token_over_bon={n}",),
    ),
    "soak": Smoke(
        "real_model",
        ("--seconds", "3", "--runs", "2", "--store", "{tmp}/store"),
        (
            "RESULT seconds={n} rounds={n} queries={n} errors=0 p95_ms={n} max_ms={n} samples_written={n} "
            "runs_compacted={n}",
        ),
    ),
    "throughput": Smoke(
        "real_model",
        ("--questions", "1", "--samples", "2", "--max-tokens", "4", "--slots", "2", "--rounds", "1"),
        ("RESULT worker_over_raw={n}",),
    ),
    "verifier_quality": Smoke(
        "real_model",
        ("--questions", "2", "--samples", "2", "--max-tokens", "4", "--parallel", "2"),
        ("RESULT auroc_inline={n} auroc_chat={n} judge_seconds_inline_over_chat={n}",),
    ),
    "import": Smoke(  # 4 problems x 50 samples in the Monkeys layout, the reference importing half of them
        "unit",
        ("--questions", "4", "--samples", "50", "--reference-fraction", "2"),
        (
            "RESULT import=reference questions={n} samples={n} seconds={n} cpu_s={n} samples_per_s={n} peak_rss_mb={n}",
            "RESULT import=full questions={n} samples={n} seconds={n} cpu_s={n} samples_per_s={n} peak_rss_mb={n}",
            "RESULT scaling samples_per_s_ratio={n} peak_rss_ratio={n}",
            "RESULT samples_per_s={n} peak_rss_mb={n}",
        ),
    ),
    "rerun": Smoke(  # the committed study against its oracle twin: no spec is run, the two stores are read
        "unit",
        ("--reference", "examples/studies/compute-optimal", "--store", "examples/studies/compute-optimal-oracle"),
        (
            "RESULT cells={n} max_abs_diff={n} mean_abs_diff={n} pool_max_abs_diff={n} search_max_abs_diff={n} "
            "policy_max_abs_diff={n} headline_reference={n} "
            "headline_rerun={n} same_sign={n} same_verdict={n} choices_same={n} choices={n} cut_share_reference={n} "
            "cut_share_rerun={n} wall_min_reference={n} wall_min_rerun={n}",
        ),
    ),
    "serve": Smoke(  # two held-out questions, completions of 4 tokens, 1 and 2 clients
        "real_model",
        ("--questions", "2", "--clients", "1", "2", "--max-tokens", "4", "--no-warmup"),
        (
            "RESULT clients={n} requests={n} served_rps={n} raw_rps={n} served_p50_s={n} served_p95_s={n} "
            "raw_p50_s={n} raw_p95_s={n} overhead_p50={n} pool_requests={n} overhead_p50_pool={n}",
            "RESULT served_gain={n} [{n}, {n}] served_accuracy={n} best_of_n_accuracy={n} questions={n} p={n}",
        ),
    ),
    "ui": Smoke("browser", ("--questions", "6", "--samples", "4"), ("RESULT slowest_page_s={n} report_s={n}",)),
}


def bench_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")


def of_tier(tier: str) -> list[str]:
    return [name for name, s in SMOKE.items() if s.tier == tier]


def run(name: str, tmp: Path, *extra: str, env: dict | None = None, timeout: float = 600) -> list[list[float]]:
    """Run bench `name` at its smoke size; assert it exits 0 and prints every RESULT line `SMOKE` expects; return
    the numbers of each expected line, in order. The model cache is the user's (benches that default to another
    cache would assemble the model again)."""
    from backend.models.registry import cache_dir

    smoke = SMOKE[name]
    args = [a.replace("{tmp}", str(tmp)) for a in smoke.args]
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args, *extra],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": path,
            "TTC_CACHE_DIR": str(cache_dir()),
            "TTC_LLAMA_VERBOSITY": "0",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    tail = f"\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"bench/{name}.py exited {proc.returncode}{tail}"
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    out = []
    for pattern in smoke.patterns():
        found = [m for m in map(pattern.fullmatch, lines) if m]
        assert found, f"bench/{name}.py printed no RESULT line matching {pattern.pattern!r}; got {lines}{tail}"
        out.append([float(g) for g in found[-1].groups()])
    return out
