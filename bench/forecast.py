"""Backtest of the Coverage page's two forecasts: fit on the first n/8 samples of each question, predict pass@k up
to n, compare with what all n samples say.

The forecasts (backend/metrics/fit.py): the power law log(coverage) = a·k^b (Brown et al. 2024), fitted to the
coverage curve of the first m = n/8 samples (k = 1…m), and the distributional forecast (Schaeffer et al. 2025,
arXiv 2502.17578): Beta(α, β) fitted by maximum likelihood to every question's (m, correct among its first m)
counts, pass@k = 1 − B(α, β + k)/B(α, β). "First" is by sample index, as a study that stopped early would hold.
The truth is the unbiased pass@k of all n samples (backend/metrics/coverage.py), averaged over questions.

Error, per forecast: the mean absolute error of the predicted coverage on a log grid of k from m to n (9 points),
and the absolute error at k = n; and whether each forecast's 95% bootstrap band at k = n (questions resampled,
refitted) holds the observed pass@n. Two pools:
- `real`: the default model on llama.cpp, through the product's spec and worker, on the first three
  basic_arithmetic levels of examples/compute_optimal.yaml (`--per-level` questions each, `--samples` ≥ 64 per
  question); stored in `--store` (default .bench-cache/forecast) and resumed from there;
- `synthetic`: the synthetic store bench/ui.py and bench/synthetic_store.py build (two models ×
  `--synthetic-questions` × `--synthetic-samples`, 1M samples by default), one line per model.

    python -m bench.forecast [--pools real synthetic] [--per-level 4] [--samples 64] [--store DIR]

Prints one line per pool (`pool=real`, `pool=synthetic:<model>`):
`RESULT pool=<name> questions=<Q> samples=<n> fitted_on=<m> powerlaw_error=<MAE> distributional_error=<MAE>
powerlaw_error_at_n=<x> distributional_error_at_n=<y> powerlaw_band_covers_n=<0|1>
distributional_band_covers_n=<0|1>`; an error is nan where its forecast cannot be fitted (a power
law needs 3 points with coverage > 0, so m ≥ 3).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.config import parse_spec  # noqa: E402
from backend.metrics.coverage import k_grid, pass_at_k_array  # noqa: E402
from backend.metrics.fit import (  # noqa: E402
    beta_forecast_band,
    fit_beta_binomial,
    fit_power_law,
    power_law_band,
)
from backend.metrics.pools import load_pool  # noqa: E402
from backend.models.registry import DEFAULT_MODEL  # noqa: E402
from bench.adaptive import LEVELS  # noqa: E402
from store import Store  # noqa: E402

GRID_POINTS = 9


def backtest(correct: np.ndarray, fraction: int = 8, n_boot: int = 1000) -> dict:
    """Fit both forecasts on the first n/`fraction` columns of a (Q, n) correctness table, score them against the
    unbiased pass@k of all n columns on a log grid of k from n/`fraction` to n; and say whether each forecast's
    95% bootstrap band at k = n (questions resampled, refitted) holds the observed pass@n."""
    correct = np.asarray(correct, dtype=bool)
    q, n = correct.shape
    m = max(1, n // fraction)
    c_m, c_n = correct[:, :m].sum(axis=1), correct.sum(axis=1)
    ks = np.unique(np.round(np.geomspace(m, n, GRID_POINTS)).astype(np.int64))
    observed = pass_at_k_array(np.full(q, n)[:, None], c_n[:, None], ks[None, :]).mean(axis=0)
    fit_k = k_grid(m)
    per_q = pass_at_k_array(np.full(q, m)[:, None], c_m[:, None], fit_k[None, :])
    early = per_q.mean(axis=0)
    try:
        power = fit_power_law(fit_k, early).predict(ks)
        p_band = power_law_band(per_q, fit_k, ks[-1:], n_boot=n_boot)
    except ValueError:
        power, p_band = np.full(ks.shape, np.nan), (np.full(1, np.nan), np.full(1, np.nan))
    beta = fit_beta_binomial(np.full(q, m), c_m)
    dist = beta.predict(ks)
    d_band = beta_forecast_band(np.full(q, m), c_m, ks[-1:], n_boot=n_boot, start=beta)
    return dict(
        questions=q,
        samples=n,
        fitted_on=m,
        powerlaw_error=float(np.mean(np.abs(power - observed))),
        distributional_error=float(np.mean(np.abs(dist - observed))),
        powerlaw_error_at_n=float(abs(power[-1] - observed[-1])),
        distributional_error_at_n=float(abs(dist[-1] - observed[-1])),
        powerlaw_band_covers_n=int(p_band[0][0] <= observed[-1] <= p_band[1][0]),
        distributional_band_covers_n=int(d_band[0][0] <= observed[-1] <= d_band[1][0]),
        bands=(p_band, d_band),
        k=ks,
        observed=observed,
        powerlaw=power,
        distributional=dist,
    )


def _full_columns(pool) -> np.ndarray:
    """The pool's correctness table cut to the samples every question has (in sample-index order)."""
    n = int(pool.n.min())
    return pool.correct[:, :n]


def _report(name: str, r: dict) -> None:
    for k, obs, pw, ds in zip(r["k"], r["observed"], r["powerlaw"], r["distributional"]):
        print(f"  {name} k={k:>6d}: observed {obs:.3f}  power law {pw:.3f}  beta {ds:.3f}")
    (pl, ph), (dl, dh) = r["bands"]
    print(
        f"  {name} 95% bands at k={r['k'][-1]}: power law [{pl[0]:.3f}, {ph[0]:.3f}], beta [{dl[0]:.3f}, {dh[0]:.3f}]"
    )
    keys = (
        "powerlaw_error",
        "distributional_error",
        "powerlaw_error_at_n",
        "distributional_error_at_n",
        "powerlaw_band_covers_n",
        "distributional_band_covers_n",
    )
    figures = " ".join(f"{k}={r[k]:.4f}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys)
    print(f"RESULT pool={name} questions={r['questions']} samples={r['samples']} fitted_on={r['fitted_on']} {figures}")


def real_pool(args) -> np.ndarray:
    """The default model's pool on three arithmetic levels, sampled through the spec and worker (resumable)."""
    from backend.execution.execute import execute
    from backend.execution.sampling import prepare_run

    spec = parse_spec(
        {
            "name": "forecast-bench",
            "models": [DEFAULT_MODEL],
            "task": {
                "kind": "reasoning_gym",
                "datasets": [
                    {"name": "basic_arithmetic", "size": args.per_level, "level": i + 1, "config": cfg}
                    for i, cfg in enumerate(LEVELS[:3])
                ],
            },
            "samples_per_question": args.samples,
            "temperature": 0.8,
            "top_p": 0.95,
            "max_tokens": args.max_tokens,
        }
    )
    run = prepare_run(spec)
    store = Store.open(args.store)
    have = int(store.query("SELECT count(*) AS n FROM samples WHERE run_id = ?", [run.run_id])["n"][0])
    if have < run.total_samples:
        print(f"sampling the pool: {run.total_samples - have} samples to go", flush=True)
        execute(run, store)
    cut = store.query(
        "SELECT avg(CASE WHEN finish_reason = 'length' THEN 1 ELSE 0 END) AS cut FROM samples WHERE run_id = ?",
        [run.run_id],
    )["cut"][0]
    con = store.connect()
    try:
        pool = load_pool(con, run.run_id, run.models[0][1].name, verifiers=[])
    finally:
        con.close()
    print(
        f"real pool: {pool.n_questions} questions x {int(pool.n.min())} samples, mean pass@1 "
        f"{pool.correct.sum() / pool.valid.sum():.3f}, {cut:.0%} cut at max_tokens={args.max_tokens}",
        flush=True,
    )
    return _full_columns(pool)


def synthetic_pools(args) -> dict[str, np.ndarray]:
    """One correctness table per model of the synthetic store (built in a temporary directory)."""
    from bench.synthetic_store import make_synthetic_store

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = make_synthetic_store(
            Path(tmp) / "store", args.synthetic_questions, args.synthetic_samples, verifiers=(), n_trees=0
        )
        runs = store.query("SELECT DISTINCT run_id, model FROM samples ORDER BY model")
        print(f"synthetic store: {len(runs)} pools written in {time.perf_counter() - t0:.1f} s", flush=True)
        con = store.connect()
        try:
            for run_id, model in zip(runs["run_id"], runs["model"]):
                out[f"synthetic:{model}"] = _full_columns(load_pool(con, run_id, model, verifiers=[]))
        finally:
            con.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pools", nargs="+", choices=["real", "synthetic"], default=["real", "synthetic"])
    ap.add_argument("--fraction", type=int, default=8, help="fit on the first n/FRACTION samples of each question")
    ap.add_argument("--per-level", type=int, default=4, help="real pool: questions per arithmetic level (3 levels)")
    ap.add_argument("--samples", type=int, default=64, help="real pool: samples per question")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--store", default=str(ROOT / ".bench-cache" / "forecast"))
    ap.add_argument("--synthetic-questions", type=int, default=500)
    ap.add_argument("--synthetic-samples", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.fraction < 1:
        ap.error("--fraction must be >= 1")
    pools: dict[str, np.ndarray] = {}
    if "real" in args.pools:
        pools["real"] = real_pool(args)
    if "synthetic" in args.pools:
        pools.update(synthetic_pools(args))
    for name, correct in pools.items():
        _report(name, backtest(correct, args.fraction))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
