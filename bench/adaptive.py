"""Adaptive allocation against uniform allocation at equal total FLOPs, on held-out questions.

A uniform pool is sampled once (the default model on llama.cpp, questions of four difficulty levels, `--cap`
samples each; resumable in `--store`). An adaptive run draws a prefix of each question's samples (the same
per-sample seeds), so the allocator is replayed on the pool (`backend.allocation.simulate`) instead of generating
again: exactly the samples a live adaptive run would draw.

The questions are split in two halves within each level. On the first half the allocator's knobs (stopping
confidence, first round, the hopeless threshold) are chosen for each budget; on the second half that policy is
scored against uniform allocation, both selecting by majority vote:
- accuracy at equal FLOPs: the adaptive run's per-question majority correctness against uniform majority@k
  (expected over k-subsets) at the k whose ledger total equals the adaptive run's spend (interpolated between
  whole k), paired over the held-out questions (bootstrap interval, McNemar/sign test);
- FLOPs at equal accuracy: 1 − the adaptive run's spend / the uniform spend that reaches its accuracy
  (interpolated on uniform's accuracy-FLOPs curve), with a bootstrap interval over the held-out questions.

    python -m bench.adaptive [--per-level 8] [--cap 16] [--budgets 2.5 3 4 6] [--store DIR]

Prints one line per budget, then `RESULT accuracy_gain_at_equal_flops=<x> [lo, hi]
flops_saved_at_equal_accuracy=<y> [lo, hi]` at the headline budget (`--headline`, mean samples per question)."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.allocation import Policy, pool_questions, simulate, total_flops  # noqa: E402
from backend.config import parse_spec  # noqa: E402
from backend.metrics import majority_curve, pool_from_arrays  # noqa: E402
from backend.metrics.compute_optimal import fold_assignment  # noqa: E402
from backend.metrics.paired import paired_difference  # noqa: E402
from backend.models.registry import DEFAULT_MODEL  # noqa: E402
from backend.sampling import prepare_run  # noqa: E402
from backend.tasks.base import ANSWER_SQL  # noqa: E402
from backend.worker import execute  # noqa: E402
from store import Store  # noqa: E402

LEVELS = [  # the four levels of examples/compute_optimal.yaml
    {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+"], "allow_negation": False},
    {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+", "-", "*"]},
    {"min_terms": 3, "max_terms": 3, "min_digits": 2, "max_digits": 2, "operators": ["+", "-"]},
    {"min_terms": 4, "max_terms": 4, "min_digits": 3, "max_digits": 3},
]
GRID = {"confidence": (0.8, 0.9, 0.95), "first_round": (2, 3), "hopeless_agreement": (0.0, 0.34)}


def _spec(args, adaptive: dict | None = None):
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
            **({"adaptive": adaptive} if adaptive else {}),
        }
    )


def _majority_correct(answers, correct_answer_set) -> float:
    """Majority over the drawn answers, ties averaged, no answer scores 0."""
    votes: dict = {}
    for a in answers:
        if a is not None:
            votes[a] = votes.get(a, 0) + 1
    if not votes:
        return 0.0
    top = max(votes.values())
    winners = [a for a, n in votes.items() if n == top]
    return float(np.mean([a in correct_answer_set for a in winners]))


def _flops_saved(idx, acc_u, flops_u, acc_a, spent_a) -> float:
    """1 − the adaptive spend / the uniform spend that reaches the adaptive accuracy, on questions `idx` (uniform's
    accuracy-FLOPs curve interpolated; above its best accuracy, its largest k)."""
    curve = np.maximum.accumulate(acc_u[:, idx].mean(axis=1))
    need = np.interp(acc_a[idx].mean(), curve, flops_u[:, idx].sum(axis=1))
    return 1.0 - spent_a[idx].sum() / need


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--per-level", type=int, default=8)
    ap.add_argument("--cap", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--budgets", type=float, nargs="+", default=[2.5, 3.0, 4.0, 6.0])
    ap.add_argument("--headline", type=float, default=4.0)
    ap.add_argument("--store", default=str(ROOT / ".bench-cache" / "adaptive"))
    ap.add_argument("--boot", type=int, default=4000)
    args = ap.parse_args()

    uniform = prepare_run(_spec(args))
    store = Store.open(args.store)
    have = int(store.query("SELECT count(*) AS n FROM samples WHERE run_id = ?", [uniform.run_id])["n"][0])
    if have < uniform.total_samples:
        print(f"sampling the pool: {uniform.total_samples - have} samples to go", flush=True)
        execute(uniform, store)
    model = uniform.models[0][1]
    qs = pool_questions(store, uniform.run_id, model, uniform)
    ok = store.query(  # the normalised answers graded correct, per question (what the pool's answers are)
        f"SELECT question_id, coalesce(list(DISTINCT {ANSWER_SQL}) FILTER (WHERE correct), []) AS right"
        " FROM samples WHERE run_id = ? GROUP BY 1",
        [uniform.run_id],
    )
    right = {q: set(r) for q, r in zip(ok["question_id"], ok["right"])}
    levels = store.query("SELECT question_id, level FROM questions WHERE run_id = ?", [uniform.run_id])
    level = dict(zip(levels["question_id"], levels["level"]))
    ids = [q.question_id for q in qs]
    fold = fold_assignment(np.array([level[i] for i in ids]), seed=0)
    halves = [[q for q, f in zip(qs, fold) if f == h] for h in (0, 1)]
    print(f"{len(qs)} questions x {args.cap} samples; fitting on {len(halves[0])}, scoring on {len(halves[1])}")

    def run_policy(questions, budget: float, knobs: dict):
        prepared = prepare_run(_spec(args, {"total_budget": budget, "per_question": True, **knobs_spec(knobs)}))
        prepared.questions[:] = [q for q in prepared.questions if q.question_id in {x.question_id for x in questions}]
        total = total_flops(prepared, model)
        policy = Policy(max_samples=args.cap, **knobs)
        drawn, _ = simulate(questions, total, policy)
        acc = np.array([_majority_correct(q.answers[: drawn[q.question_id]], right[q.question_id]) for q in questions])
        spent = np.array(
            [
                q.prefill_flops + sum(q.decode_flops[: drawn[q.question_id]]) if drawn[q.question_id] else 0.0
                for q in questions
            ]
        )
        return acc, spent, drawn

    def knobs_spec(knobs: dict) -> dict:
        return {k: v for k, v in knobs.items() if k in ("confidence", "first_round", "hopeless_agreement")}

    # uniform on the held-out half: per question, expected majority@k and the ledger cost of k samples
    held = halves[1]
    answer_codes = []
    for q in held:
        codes = {a: i for i, a in enumerate(sorted({a for a in q.answers if a is not None}))}
        answer_codes.append([codes[a] if a is not None else -1 for a in q.answers[: args.cap]])
    correct = np.array([[a is not None and a in right[q.question_id] for a in q.answers[: args.cap]] for q in held])
    pool = pool_from_arrays(correct, np.array(answer_codes))
    ks = np.arange(1, args.cap + 1)
    acc_u = majority_curve(pool, ks, draws=256, seed=0, n_boot=0).per_question.T  # (K, Q)
    mean_decode = np.array([np.mean(q.decode_flops[: args.cap]) for q in held])
    prefill = np.array([q.prefill_flops for q in held])
    flops_u = prefill[None, :] + ks[:, None] * mean_decode[None, :]  # (K, Q)

    results = {}
    for budget in args.budgets:
        candidates = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
        candidates = [c for c in candidates if c["first_round"] <= budget]
        fitted = max(candidates, key=lambda c: run_policy(halves[0], budget, c)[0].mean())
        acc_a, spent_a, drawn = run_policy(held, budget, fitted)
        # uniform at the adaptive run's total spend: the fractional k whose total FLOPs match
        k_eq = np.interp(spent_a.sum(), flops_u.sum(axis=1), ks)
        lo = int(np.clip(np.floor(k_eq), 1, args.cap))
        hi = min(lo + 1, args.cap)
        w = k_eq - lo
        uni = (1 - w) * acc_u[lo - 1] + w * acc_u[hi - 1]
        gain = paired_difference(acc_a, uni, n_boot=args.boot, seed=0)

        everyone = np.arange(len(held))
        point = _flops_saved(everyone, acc_u, flops_u, acc_a, spent_a)
        rng = np.random.default_rng(1)
        boot = np.array(
            [
                _flops_saved(rng.integers(0, len(held), len(held)), acc_u, flops_u, acc_a, spent_a)
                for _ in range(args.boot)
            ]
        )
        s_lo, s_hi = np.quantile(boot, [0.025, 0.975])
        results[budget] = (gain, point, s_lo, s_hi)
        samples = sum(drawn.values())
        print(
            f"budget {budget:g} samples/question: adaptive {acc_a.mean():.3f} ({samples} samples, fitted {fitted}) vs "
            f"uniform {uni.mean():.3f} at k={k_eq:.2f}; gain {gain.difference:+.3f} [{gain.ci_low:+.3f}, "
            f"{gain.ci_high:+.3f}] p={gain.p_value:.2g}; FLOPs saved at equal accuracy {point:+.2f} "
            f"[{s_lo:+.2f}, {s_hi:+.2f}]",
            flush=True,
        )
    gain, point, s_lo, s_hi = results[min(results, key=lambda b: abs(b - args.headline))]
    print(
        f"RESULT accuracy_gain_at_equal_flops={gain.difference:.3f} [{gain.ci_low:.3f}, {gain.ci_high:.3f}] "
        f"flops_saved_at_equal_accuracy={point:.3f} [{s_lo:.3f}, {s_hi:.3f}]"
    )


if __name__ == "__main__":
    main()
