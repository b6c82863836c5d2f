"""What each analysis page computes on its first load, timed without a browser, against the per-k confidence votes
the pages used before (the reference, kept below).

Builds a synthetic store (bench/synthetic_store.py: two models, token confidences, log-probabilities, two verifiers,
search trees), then times for one model: loading the pool, coverage, every selection rule with its bands (the
Strategies and Cost-of-pass pages, `selection_curves` at the pages' 32 draws), the confidence rules alone, and the
compute-optimal study's inputs (`study_inputs`: the StrategyTable every page with searches shares, with the rules at
every k level its budgets need). The reference times the same confidence rules with the per-k implementation on
the same pool and k levels, in the same process; the two must agree draw for draw.

    python -m bench.page_compute [--questions 100] [--samples 1000]

Last line: RESULT selection_s=<s> study_inputs_s=<s> votes_speedup_vs_per_k=<x> study_votes_speedup_vs_per_k=<x>
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.metrics.confidence import RULES  # noqa: E402
from backend.metrics.coverage import coverage_curve  # noqa: E402
from backend.metrics.pools import load_pool  # noqa: E402
from backend.metrics.selection import (  # noqa: E402
    FirstCopies,
    answer_correctness,
    confidence_votes,
    path_probability,
    pick_weighted,
    selection_curves,  # noqa: E402
)
from backend.metrics.strategy_table import k_levels  # noqa: E402
from backend.metrics.study import study_inputs  # noqa: E402
from bench.synthetic_store import make_synthetic_store  # noqa: E402
from store import Store  # noqa: E402


def per_k_confidence_votes(
    valid: np.ndarray,
    answer_id: np.ndarray,
    answer_ok: np.ndarray,
    confidence: np.ndarray,
    probability: np.ndarray,
    ks: np.ndarray,
    *,
    draws: int,
    seed: int,
    keep_fraction: float = 0.1,
    path_id: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The per-k implementation `confidence_votes` replaced (a full sort and three tallies per draw and k), kept as
    the reference the vectorised one must reproduce draw for draw (tests/unit/test_metrics_confidence.py)."""
    if draws < 2:
        raise ValueError(f"draws must be >= 2 to report a resampling band, got {draws}")
    rng = np.random.default_rng(seed)
    n_q, width = valid.shape
    n_ans = answer_ok.shape[1]
    code = np.where(valid & (answer_id >= 0), answer_id, n_ans).astype(np.int64)
    conf = np.where(valid, np.nan_to_num(confidence, nan=0.0), 0.0)
    if path_id is None:
        prob = np.where(valid, np.nan_to_num(probability, nan=0.0), 0.0)
        first_copies = None
    else:
        prob = path_probability(valid, path_id, probability)
        first_copies = FirstCopies(valid, path_id)
    ks = np.asarray(ks, dtype=np.int64)
    out = {rule: np.empty((draws, n_q, len(ks))) for rule in RULES}
    flat_q = np.arange(n_q)[:, None] * (n_ans + 1)
    size = n_q * (n_ans + 1)

    def tally(mask: np.ndarray, a: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
        counted = np.bincount((flat_q + a)[mask], weights=None if weight is None else weight[mask], minlength=size)
        return counted.reshape(n_q, 1, n_ans + 1)[..., :n_ans]

    for d in range(draws):
        perm = rng.permutation(width)
        v, a, c = valid[:, perm], code[:, perm], conf[:, perm]
        p = prob[:, perm] if first_copies is None else np.where(first_copies.mask(perm), prob, 0.0)[:, perm]
        rank = np.cumsum(v, axis=1)
        n_valid = rank[:, -1]
        for j, k in enumerate(ks):
            in_k = v & (rank <= k)
            counts = tally(in_k, a, None)
            out["deepconf_weighted"][d, :, j] = pick_weighted(counts, tally(in_k, a, c), answer_ok)[:, 0]
            out["perplexity_consistency"][d, :, j] = pick_weighted(counts, tally(in_k, a, p), answer_ok)[:, 0]
            # the most confident ceil(keep_fraction · k) of the k (at least one) vote
            m = np.maximum(1, np.ceil(keep_fraction * np.minimum(k, n_valid))).astype(np.int64)
            ranked = -np.sort(-np.where(in_k, c, -np.inf), axis=1)
            threshold = ranked[np.arange(n_q), np.minimum(m, width) - 1]
            keep = in_k & (c >= threshold[:, None])
            out["deepconf_filtered"][d, :, j] = pick_weighted(tally(keep, a, None), tally(keep, a, c), answer_ok)[:, 0]
    return out


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def _votes_args(pool):
    nan = np.full(pool.valid.shape, np.nan)
    conf = pool.confidence if pool.confidence is not None else nan
    prob = np.exp(pool.logprob_mean) if pool.logprob_mean is not None else nan
    ok = answer_correctness(pool.valid, pool.correct, pool.answer_id)
    return (pool.valid, pool.answer_id, ok, conf, prob), pool.path_id


def _compare(pool, ks, draws: int) -> float:
    """Both implementations of the confidence votes on `ks`; checks they agree, returns the speedup."""
    args, path_id = _votes_args(pool)
    new, t_new = _timed(lambda: confidence_votes(*args, ks, draws=draws, seed=0, path_id=path_id))
    old, t_old = _timed(lambda: per_k_confidence_votes(*args, ks, draws=draws, seed=0, path_id=path_id))
    for rule in RULES:
        if not np.allclose(new[rule], old[rule], rtol=0, atol=1e-12):
            raise SystemExit(f"{rule}: the vectorised votes differ from the per-k reference")
    print(f"  confidence votes on {len(ks)} k: {t_new:.2f} s, per-k reference {t_old:.2f} s ({t_old / t_new:.1f}x)")
    return t_old / t_new


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--store", type=Path, default=None, help="an existing store (default: build a synthetic one)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ttc-bench-pages-") as tmp:
        root = a.store
        if root is None:
            root = Path(tmp) / "store"
            make_synthetic_store(root, a.questions, a.samples)
        store = Store.open(root, create=False)
        con = store.connect()
        runs = store.query("SELECT DISTINCT run_id, model FROM samples ORDER BY model, run_id")
        model = runs["model"].iloc[-1]
        run_ids = runs["run_id"].tolist()
        pool, t_pool = _timed(lambda: load_pool(con, run_ids, model, strategy="sample"))
        print(f"{model}: {pool.n_questions} questions x {int(pool.n.max())} samples")
        print(f"  load pool: {t_pool:.2f} s")
        _, t_cov = _timed(lambda: coverage_curve(pool))
        print(f"  coverage: {t_cov:.2f} s")
        verifier = sorted(pool.scores)[0] if pool.scores else None
        _, t_sel = _timed(lambda: selection_curves(pool, verifier, draws=a.draws))
        print(f"  every selection rule with its bands ({a.draws} draws): {t_sel:.2f} s")
        _, t_study = _timed(lambda: study_inputs(con, run_ids, model, draws=a.draws))
        print(f"  compute-optimal study inputs: {t_study:.2f} s")
        grid = selection_curves(pool, None, draws=2, n_boot=0)["majority"].k
        votes_x = _compare(pool, grid, a.draws)
        study_x = _compare(pool, k_levels(int(pool.n.min())), a.draws)
        con.close()
    print(
        f"RESULT selection_s={t_sel:.3f} study_inputs_s={t_study:.3f} votes_speedup_vs_per_k={votes_x:.2f} "
        f"study_votes_speedup_vs_per_k={study_x:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
