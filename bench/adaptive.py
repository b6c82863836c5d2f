"""Adaptive allocation against uniform allocation at equal total FLOPs, on held-out questions.

A uniform pool is sampled once (the default model on llama.cpp, questions of four difficulty levels, `--cap`
samples each; resumable in `--store`). An adaptive run draws a prefix of each question's samples (the same
per-sample seeds), so the allocator is replayed on the pool (`backend.execution.allocation.simulate`) instead of generating
again: exactly the samples a live adaptive run would draw. Which samples come first is luck, so each policy is
scored as the mean over random orders of every question's samples (`--orders`; each order an equally likely draw),
as uniform's curves are expectations over k-subsets: one order alone swings a 24-question half by ±0.1.

A budget of k is what uniform sampling of k samples per question costs the same questions on the ledger (each
prompt's prefill once, k mean decodes), given to the allocator in FLOPs. The questions are split in two halves
within each level; on the first half the allocator's knobs (stopping rule and its threshold, first round, round
size, the hopeless threshold) are chosen per budget for the best majority accuracy; on the second half that
policy, selecting by majority vote, is scored against uniform allocation of the same FLOPs:
- accuracy at equal FLOPs: per question, the adaptive run's majority correctness against uniform majority@k
  (expected over k-subsets) and uniform best-of-N by trace confidence (DeepConf's self-certainty: no verifier
  needed) at the k whose ledger total equals the adaptive run's spend (interpolated between whole k), paired
  over the held-out questions (bootstrap interval, the paired sign-flip test of the mean difference);
- FLOPs at equal accuracy: 1 − the adaptive run's spend / the uniform majority spend that reaches its accuracy
  (interpolated on uniform's accuracy-FLOPs curve), with a bootstrap interval over the held-out questions.

    python -m bench.adaptive [--per-level 12] [--cap 16] [--budgets 2 3 4 6 8] [--store DIR]

Prints one line per budget, then `RESULT accuracy_gain_at_equal_flops=<x> [lo, hi]
flops_saved_at_equal_accuracy=<y> [lo, hi]` (against uniform majority) at the headline budget (`--headline`)."""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.config import parse_spec  # noqa: E402
from backend.execution.allocation import Policy, pool_questions, simulate  # noqa: E402
from backend.execution.execute import execute  # noqa: E402
from backend.execution.sampling import prepare_run  # noqa: E402
from backend.metrics.compute_optimal import fold_assignment  # noqa: E402
from backend.metrics.paired import paired_difference  # noqa: E402
from backend.metrics.pools import load_pool  # noqa: E402
from backend.metrics.quality import data_quality  # noqa: E402
from backend.metrics.selection import best_of_n_curve, majority_curve, prefix_vote  # noqa: E402
from backend.models.registry import DEFAULT_MODEL  # noqa: E402
from store import Store  # noqa: E402

LEVELS = [  # the four levels of examples/compute_optimal.yaml
    {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+"], "allow_negation": False},
    {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+", "-", "*"]},
    {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2, "operators": ["+", "-"]},
    {"min_terms": 4, "max_terms": 4, "min_digits": 3, "max_digits": 3},
]
STOPS = [("beta", c) for c in (0.8, 0.9, 0.95, 0.99)] + [("supermajority", s) for s in (0.6, 0.75, 0.9)]
GRID = {"stop": STOPS, "first_round": (1, 2, 3), "round_samples": (2, 4), "hopeless_agreement": (0.0, 0.34)}


def _spec(args):
    return parse_spec(
        {
            "name": "adaptive-bench",
            "models": [DEFAULT_MODEL],
            "task": {
                "kind": "reasoning_gym",
                "datasets": [
                    {"name": "basic_arithmetic", "size": args.per_level, "level": i + 1, "config": cfg}
                    for i, cfg in enumerate(LEVELS)
                ],
            },
            "samples_per_question": args.cap,
            "temperature": 0.8,
            "top_p": 0.95,
            "max_tokens": args.max_tokens,
        }
    )


def _policy(knobs: dict, cap: int) -> Policy:
    stop, threshold = knobs["stop"]
    rest = {k: v for k, v in knobs.items() if k != "stop"}
    level = {"confidence": threshold} if stop == "beta" else {"supermajority": threshold}
    return Policy(stop=stop, max_samples=cap, hopeless_after=max(4, rest["first_round"]), **level, **rest)


def _flops_saved(idx, acc_u, flops_u, acc_a, spent_a) -> float:
    """1 − the adaptive spend / the uniform spend that reaches the adaptive accuracy, on questions `idx` (uniform's
    accuracy-FLOPs curve interpolated; above its best accuracy, its largest k)."""
    curve = np.maximum.accumulate(acc_u[:, idx].mean(axis=1))
    need = np.interp(acc_a[idx].mean(), curve, flops_u[:, idx].sum(axis=1))
    return 1.0 - spent_a[idx].sum() / need


def _reordered(pool, questions, rng):
    """The pool and its questions with each question's samples in a random order: another equally likely draw
    of the samples an adaptive run takes as a prefix (the samples are independent given the question)."""
    order = np.argsort(np.where(pool.valid, rng.random(pool.valid.shape), np.inf), axis=1)  # padding stays last

    def take(a):
        return None if a is None else np.take_along_axis(a, order, axis=1)

    p = replace(
        pool,
        valid=take(pool.valid),
        correct=take(pool.correct),
        answer_id=take(pool.answer_id),
        decode_flops=take(pool.decode_flops),
        confidence=take(pool.confidence),
        scores={k: take(v) for k, v in pool.scores.items()},
    )
    qs = [
        replace(
            q,
            answers=tuple(q.answers[j] for j in row[: len(q.answers)]),
            decode_flops=tuple(q.decode_flops[j] for j in row[: len(q.answers)]),
        )
        for q, row in zip(questions, order)
    ]
    return p, qs


def _pool_rows(pool, by_id: dict) -> list:
    """One PoolQuestion per pool row, its samples the row's cells in order: a question the dataset drew twice is one
    question (one key) holding both draws' samples, as every pool analysis counts it, and its prompt is priced as
    its first draw's (the same text). Answers are the pool's answer codes (equal codes: equal normalised answers)."""
    out = []
    for i, qid in enumerate(pool.question_ids):
        cells = pool.valid[i]
        out.append(
            replace(
                by_id[qid],
                answers=tuple(None if a < 0 else int(a) for a in pool.answer_id[i, cells]),
                decode_flops=tuple(float(x) for x in pool.decode_flops[i, cells]),
            )
        )
    return out


def _at_k(table: np.ndarray, k: float) -> np.ndarray:
    """A (K, Q) per-k table's row at fractional k (1 ≤ k ≤ K), interpolated between the whole k around it."""
    lo = int(np.clip(np.floor(k), 1, len(table)))
    hi = min(lo + 1, len(table))
    w = k - lo
    return (1 - w) * table[lo - 1] + w * table[hi - 1]


def _budget(costs: np.ndarray, k: float) -> float:
    """The FLOPs of uniform sampling at (fractional) k samples per question, from its (K, Q) ledger costs."""
    return float(_at_k(costs, k).sum())


def _at_spend(spent: float, flops_u, acc_u, ks):
    """Uniform's per-question accuracy (K, Q) at the fractional k whose ledger total is `spent`, and that k."""
    k_eq = float(np.interp(spent, flops_u.sum(axis=1), ks))
    return _at_k(acc_u, k_eq), k_eq


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--per-level", type=int, default=12)
    ap.add_argument("--cap", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--budgets", type=float, nargs="+", default=[2.0, 3.0, 4.0, 6.0, 8.0])
    ap.add_argument("--headline", type=float, default=4.0)
    ap.add_argument("--store", default=str(ROOT / ".bench-cache" / "adaptive"))
    ap.add_argument("--boot", type=int, default=4000)
    ap.add_argument("--orders", type=int, default=64, help="sample orders the held-out score is averaged over")
    ap.add_argument("--fit-orders", type=int, default=16, help="sample orders each fitted candidate is scored on")
    args = ap.parse_args()

    uniform = prepare_run(_spec(args))
    store = Store.open(args.store)
    have = int(store.query("SELECT count(*) AS n FROM samples WHERE run_id = ?", [uniform.run_id])["n"][0])
    if have < uniform.total_samples:
        print(f"sampling the pool: {uniform.total_samples - have} samples to go", flush=True)
        execute(uniform, store)
    model = uniform.models[0][1]
    con = store.connect()
    try:
        pool = load_pool(con, uniform.run_id, model.name, verifiers=[])
    finally:
        con.close()
    pool = replace(pool, scores={"confidence": pool.confidence})  # best-of-N by trace confidence
    qs = _pool_rows(pool, {q.question_id: q for q in pool_questions(store, uniform.run_id, model, uniform)})
    levels = store.query("SELECT question_id, level FROM questions WHERE run_id = ?", [uniform.run_id])
    level = dict(zip(levels["question_id"], levels["level"]))
    con = store.connect()
    try:  # what the pool measures at its cap: per level (as bins), the samples cut or unanswered
        bins = {k: int(level[i]) for k, i in zip(pool.keys, pool.question_ids)}
        quality = data_quality(con, [uniform.run_id], bins=bins)
    finally:
        con.close()
    print(quality.summary(), *("  " + line for line in quality.lines()), sep="\n", flush=True)
    fold = fold_assignment(np.array([level[i] for i in pool.question_ids]), seed=0)
    halves = [(pool.subset(fold == h), [q for q, f in zip(qs, fold) if f == h]) for h in (0, 1)]
    print(
        f"{len(qs)} questions, {int(pool.valid.sum())} samples (mean accuracy {pool.correct[pool.valid].mean():.3f}, "
        f"up to {args.cap} drawn per question); fitting on "
        f"{len(halves[0][1])}, scoring on {len(halves[1][1])}, each over {args.orders} sample orders",
        flush=True,
    )
    ks = np.arange(1, args.cap + 1)

    def uniform_flops(half) -> np.ndarray:
        """(K, Q) ledger cost of k uniform samples per question: the prefill once, k mean decodes."""
        p = half[0]
        return np.nanmax(p.prefill_flops, axis=1)[None, :] + ks[:, None] * np.nanmean(p.decode_flops, axis=1)[None, :]

    def run_policy(orders, total: float, knobs: dict):
        """Per question, over the sample orders: mean majority correctness, mean ledger spend, mean samples."""
        acc, spent, drawn_n = [], [], []
        for p, questions in orders:
            drawn, _ = simulate(questions, total, _policy(knobs, args.cap))
            n = np.array([drawn[q.question_id] for q in questions])
            acc.append(prefix_vote(p, n))
            spent.append([q.spent(drawn[q.question_id]) for q in questions])
            drawn_n.append(n)
        return np.mean(acc, axis=0), np.mean(spent, axis=0), np.mean(drawn_n, axis=0)

    held = halves[1]
    rng = np.random.default_rng(0)
    fit_orders = [_reordered(*halves[0], rng) for _ in range(args.fit_orders)]
    held_orders = [_reordered(*held, rng) for _ in range(args.orders)]
    acc_u = majority_curve(held[0], ks, draws=256, seed=0, n_boot=0).per_question.T  # (K, Q)
    bon_u = best_of_n_curve(held[0], "confidence", ks, n_boot=0).per_question.T
    flops_u = uniform_flops(held)
    fit_costs = uniform_flops(halves[0])
    candidates = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]

    results = {}
    for budget in args.budgets:
        fitting = [c for c in candidates if c["first_round"] <= budget]
        scored = [(run_policy(fit_orders, _budget(fit_costs, budget), c), c) for c in fitting]
        (_, _, _), fitted = max(scored, key=lambda x: (x[0][0].mean(), -x[0][1].sum()))
        acc_a, spent_a, n_a = run_policy(held_orders, _budget(flops_u, budget), fitted)
        uni, k_eq = _at_spend(spent_a.sum(), flops_u, acc_u, ks)
        bon, _ = _at_spend(spent_a.sum(), flops_u, bon_u, ks)
        gain = paired_difference(acc_a, uni, n_boot=args.boot, seed=0)
        gain_bon = paired_difference(acc_a, bon, n_boot=args.boot, seed=0)

        everyone = np.arange(len(held[1]))
        point = _flops_saved(everyone, acc_u, flops_u, acc_a, spent_a)
        rng = np.random.default_rng(1)
        boot = np.array(
            [
                _flops_saved(rng.integers(0, len(everyone), len(everyone)), acc_u, flops_u, acc_a, spent_a)
                for _ in range(args.boot)
            ]
        )
        s_lo, s_hi = np.quantile(boot, [0.025, 0.975])
        results[budget] = (gain, point, s_lo, s_hi)
        knobs = ", ".join(f"{k}={v}" for k, v in fitted.items())
        print(
            f"budget k={budget:g}: adaptive {acc_a.mean():.3f} ({n_a.sum():.0f} samples, {n_a.min():.1f}-{n_a.max():.1f}"
            f" per question, {spent_a.sum() / _budget(flops_u, budget):.0%} of the budget spent; {knobs}) | uniform at equal "
            f"FLOPs (k={k_eq:.2f}): majority {uni.mean():.3f}, best-of-N[confidence] {bon.mean():.3f} | gain vs "
            f"majority {gain.difference:+.3f} [{gain.ci_low:+.3f}, {gain.ci_high:+.3f}] p={gain.p_value:.2g}, vs "
            f"best-of-N {gain_bon.difference:+.3f} [{gain_bon.ci_low:+.3f}, {gain_bon.ci_high:+.3f}] "
            f"p={gain_bon.p_value:.2g} | FLOPs saved at equal accuracy {point:+.2f} [{s_lo:+.2f}, {s_hi:+.2f}]",
            flush=True,
        )
    gain, point, s_lo, s_hi = results[min(results, key=lambda b: abs(b - args.headline))]
    print(
        f"RESULT accuracy_gain_at_equal_flops={gain.difference:.3f} [{gain.ci_low:.3f}, {gain.ci_high:.3f}] "
        f"flops_saved_at_equal_accuracy={point:.3f} [{s_lo:.3f}, {s_hi:.3f}]"
    )


if __name__ == "__main__":
    main()
