"""Benchmark of the metrics the dashboard shows, on a synthetic store of 1,000 questions × 1,024 samples.

Builds Parquet shards shaped like the store's `samples` and `scores` tables (two verifiers) in a temp store,
reads them through `Store.connect` as the dashboard does (a column the bench does not write reads as NULL, as in
a store written before that column existed), and times: loading the pool (one SQL query), coverage, the three selection
curves on an 11-point k grid, oracle and predicted difficulty bins with all four curves per bin, and compute-optimal
allocation over 20 configurations × 10 budgets (for both bin kinds). The same numbers are then computed by a
plain per-question Python reference; its resampled part runs on a subset of questions and is scaled up,
which the output says.

The store also holds a `nodes` view: 12 search configurations × 5 FLOP budgets (the cost of 2, 4, …, 32 of the
pool's average samples) × every question, with full trees (7–31 nodes each). The whole Compute-optimal view
(`compute_optimal_study`: pool + searches from the store, the StrategyTable, bins, cross-validated allocation and its
bootstrap band) is timed once per bin kind, as the dashboard computes it, and the band's own share beside it.
Last line: RESULT seconds=<s> speedup_vs_reference=<x> compute_optimal_view_s=<oracle s> compute_optimal_view_predicted_s=<s>.

    python bench/metrics.py [--questions 1000] [--samples 1024] [--reference-questions 40]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.ledger import ModelArch, decode_flops, prefill_flops  # noqa: E402
from backend.metrics.compute_optimal import BAND_BOOT, accuracy_table, compute_optimal, cv_band  # noqa: E402
from backend.metrics.coverage import coverage_curve, k_grid
from backend.metrics.difficulty import curves_by_bin, oracle_bins, predicted_bins
from backend.metrics.pools import load_pool
from backend.metrics.selection import selection_curves
from backend.metrics.strategy_table import STATUSES  # noqa: E402
from backend.metrics.study import compute_optimal_study  # noqa: E402
from bench.synthetic_store import search_configuration_table  # noqa: E402
from store import Store  # noqa: E402

ARCH = ModelArch(n_params=494_000_000, n_layers=24, d_model=896)
VERIFIERS = ("prm", "orm")
N_CONFIGS = 20
BUDGET_SAMPLES = (2, 4, 8, 16, 32)  # search budgets, in the pool's average samples (prefill + decode)
# (strategy, record, nodes per tree, skill, budget slope, hard-question bonus): correctness of a question is drawn
# with logit P = logit(pass@1) + skill + slope · log2(budget / smallest) + bonus · (0.5 - pass@1)
SEARCH_CONFIGS = (
    ("beam_search", {"n": 8, "width": 2, "verifier": "prm"}, 11, 0.3, 0.25, 0.8),
    ("beam_search", {"n": 16, "width": 4, "verifier": "prm"}, 21, 0.4, 0.30, 1.2),
    ("beam_search", {"n": 32, "width": 4, "verifier": "prm"}, 31, 0.2, 0.40, 1.6),
    ("lookahead", {"n": 16, "width": 4, "lookahead": 2, "verifier": "prm"}, 25, 0.1, 0.35, 1.4),
    ("dvts", {"n": 16, "width": 4, "verifier": "prm"}, 17, 0.5, 0.30, 0.6),
    ("dvts", {"n": 32, "width": 8, "verifier": "prm"}, 31, 0.3, 0.40, 0.9),
    ("particle_filtering", {"n": 8, "verifier": "prm"}, 17, 0.4, 0.30, 1.0),
    ("rebase", {"n": 16, "verifier": "prm"}, 19, 0.3, 0.35, 1.1),
    ("sequential_revisions", {"chains": 4, "chain_length": 2, "ratio": "1:2", "verifier": "prm"}, 9, 0.6, 0.20, -0.4),
    ("sequential_revisions", {"chains": 2, "chain_length": 4, "ratio": "2:1", "verifier": "prm"}, 9, 0.7, 0.25, -0.8),
    ("sequential_revisions", {"chains": 1, "chain_length": 8, "ratio": "8:1", "verifier": "prm"}, 9, 0.5, 0.30, -1.2),
    ("budget_forcing", {"n": 1, "extensions": 2, "verifier": None}, 7, 0.2, 0.15, -0.2),
)
N_UNAFFORDABLE = 5  # questions per configuration whose smallest budget pays no round (the longest prompts)


def build_store(root: Path, n_q: int, n_s: int, seed: int = 0) -> duckdb.DuckDBPyConnection:
    """Synthetic pools: per-question pass rate from a Beta, wrong answers Zipf-distributed over 12 codes,
    3% unanswered, verifier scores that separate right from wrong (prm well, orm poorly), each costing one
    prefill of prompt + completion; plus the search trees of `build_searches`. One shard per table in a store
    at `root`; returns `Store.connect()`'s views over them."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 1.2, n_q)
    correct = rng.random((n_q, n_s)) < p[:, None]
    wrong_code = np.minimum(rng.zipf(1.6, (n_q, n_s)), 12)
    code = np.where(correct, 0, wrong_code)
    unanswered = (rng.random((n_q, n_s)) < 0.03) & ~correct
    answers = pa.DictionaryArray.from_arrays(
        pa.array(np.where(unanswered, 13, code).ravel().astype(np.int32)),
        pa.array([f"{c * 7 + 3}" for c in range(13)] + [None], pa.string()),
    ).cast(pa.string())
    qids = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(n_q, dtype=np.int32), n_s)), pa.array([f"q{i:05d}" for i in range(n_q)])
    ).cast(pa.string())
    prompt = np.repeat(rng.integers(60, 240, n_q), n_s).astype(np.int32)
    completion = rng.integers(40, 400, n_q * n_s).astype(np.int32)
    pre = prefill_flops(ARCH, prompt)
    dec = decode_flops(ARCH, prompt, completion)
    flat_correct = correct.ravel()
    samples = pa.table(
        {
            "run_id": pa.array(["bench"] * (n_q * n_s)).dictionary_encode().cast(pa.string()),
            "model": pa.array(["qwen-0.5b"] * (n_q * n_s)).dictionary_encode().cast(pa.string()),
            "dataset": pa.array(["arith"] * (n_q * n_s)).dictionary_encode().cast(pa.string()),
            "question_id": qids,
            "sample_idx": pa.array(np.tile(np.arange(n_s, dtype=np.int32), n_q)),
            "strategy": pa.array(["sample"] * (n_q * n_s)).dictionary_encode().cast(pa.string()),
            "answer": answers,
            # four wordings per answer (by sample index): repeated reasoning paths, as RPC's rule dedupes
            "completion": pa.DictionaryArray.from_arrays(
                pa.array(
                    (np.where(unanswered, 13, code).ravel() * 4 + np.tile(np.arange(n_s) % 4, n_q)).astype(np.int32)
                ),
                pa.array([f"step {v}: {c * 7 + 3}" for c in range(14) for v in range(4)], pa.string()),
            ).cast(pa.string()),
            "score": pa.array(flat_correct.astype(np.float64)),
            "correct": pa.array(flat_correct),
            "prompt_tokens": pa.array(prompt),
            "cached_prompt_tokens": pa.array(np.zeros(n_q * n_s, np.int32)),
            "completion_tokens": pa.array(completion),
            "prefill_flops": pa.array(pre),
            "decode_flops": pa.array(dec),
            "flops": pa.array(dec + pre / n_s),
        }
    )
    store = Store.open(root)
    pq.write_table(samples, _shard(root, "samples"), row_group_size=1 << 18)
    score_tables = []
    for name, sharp in zip(VERIFIERS, (4.0, 1.5)):
        s = np.where(flat_correct, rng.beta(sharp, 2.0, flat_correct.size), rng.beta(2.0, sharp, flat_correct.size))
        score_tables.append(
            pa.table(
                {
                    "run_id": samples["run_id"],
                    "model": samples["model"],
                    "question_id": qids,
                    "sample_idx": samples["sample_idx"],
                    "verifier": pa.array([name] * s.size).dictionary_encode().cast(pa.string()),
                    "score": pa.array(np.round(s, 4)),
                    "verifier_flops": pa.array(prefill_flops(ARCH, prompt + completion)),
                }
            )
        )
    pq.write_table(pa.concat_tables(score_tables), _shard(root, "scores"), row_group_size=1 << 18)
    # search budgets on the pool's FLOPs scale: k average samples = k × mean(prefill + mean decode) per question
    one_sample = float(np.mean(pre.reshape(n_q, n_s)[:, 0] + dec.reshape(n_q, n_s).mean(axis=1)))
    budgets = [k * one_sample for k in BUDGET_SAMPLES]
    longest = [f"q{i:05d}" for i in np.argsort(-prompt.reshape(n_q, n_s)[:, 0], kind="stable")[:N_UNAFFORDABLE]]
    pq.write_table(build_searches(p, budgets, longest, rng), _shard(root, "nodes"), row_group_size=1 << 18)
    return store.connect()


def _shard(root: Path, table: str) -> Path:
    """Where the store keeps run "bench"'s shard of `table` (written whole here, with the bench's row groups)."""
    folder = root / table / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "00000000T000000000000-bench.parquet"


def build_searches(pass_rate: np.ndarray, budgets, unaffordable, rng) -> pa.Table:
    """NODES rows of every SEARCH_CONFIGS entry at every budget on every question (full trees); the
    `unaffordable` questions get a root only at the smallest budget."""
    qids = [f"q{i:05d}" for i in range(len(pass_rate))]
    base = np.log(np.clip(pass_rate, 1e-3, 1 - 1e-3) / (1 - np.clip(pass_rate, 1e-3, 1 - 1e-3)))
    tables = []
    for c, (strategy, record, nodes, skill, slope, hard) in enumerate(SEARCH_CONFIGS):
        spend = 0.6 + 0.35 * (c % 4) / 3  # each configuration leaves a different share of its budget unspent
        for j, budget in enumerate(budgets):
            logit = base + skill + slope * j + hard * (0.5 - pass_rate)
            ok = rng.random(len(qids)) < 1 / (1 + np.exp(-logit))
            tables.append(
                search_configuration_table(
                    "bench",
                    "qwen-0.5b",
                    strategy,
                    record,
                    budget,
                    dict(zip(qids, ok)),
                    nodes_per_tree=nodes,
                    unaffordable=unaffordable if j == 0 else (),
                    spend=spend,
                )
            )
    return pa.concat_tables(tables)


def synthetic_configurations(curves, budgets, n_q, seed=1):
    """The three pool strategies plus 17 search-like configurations (noisy blends of them), as the
    (configurations, budgets, questions) accuracy table compute-optimal takes."""
    names, acc = accuracy_table(curves, budgets)
    rng = np.random.default_rng(seed)
    extra, n_base = [], len(names)
    for c in range(N_CONFIGS - n_base):
        w = rng.dirichlet(np.ones(n_base))
        blend = np.tensordot(w, acc, axes=1) + rng.normal(0, 0.05, (len(budgets), n_q))
        extra.append(np.clip(blend, 0, 1))
        names.append(f"search_{c:02d}")
    return names, np.concatenate([acc, np.stack(extra)])


def run_vectorised(con, seed=0):
    t = {}
    t0 = time.perf_counter()
    pool = load_pool(con, "bench", "qwen-0.5b", verifiers=list(VERIFIERS))
    t["load_pool"] = time.perf_counter() - t0
    ks = k_grid(int(pool.n.min()), 11)

    t0 = time.perf_counter()
    cov = coverage_curve(pool, ks, seed=seed)
    t["coverage"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    curves = selection_curves(pool, "prm", ks, seed=seed)
    t["selection_x3"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bins = {"oracle": oracle_bins(pool), "predicted": predicted_bins(pool, "prm")}
    # every curve per bin: restricted from the computed curves, as the dashboard does
    per_bin = {
        kind: {name: curves_by_bin(curve, None, b, n_boot=200) for name, curve in [("coverage", cov), *curves.items()]}
        for kind, b in bins.items()
    }
    t["difficulty_bins"] = time.perf_counter() - t0

    budgets = ks[:10]
    names, acc = synthetic_configurations(curves, budgets, pool.n_questions)
    t0 = time.perf_counter()
    optimal = {
        kind: compute_optimal(acc, budgets, names, b.level, baseline="best_of_n[prm]", seed=seed)
        for kind, b in bins.items()
    }
    t["compute_optimal_x2"] = time.perf_counter() - t0
    return pool, ks, cov, curves, bins, per_bin, (names, acc, budgets), optimal, t


def time_view(con, repeats: int):
    """The whole Compute-optimal view, one bin kind at a time as the dashboard computes it: a warm-up, then
    the best of `repeats`; and, inside it, the cross-validated curve's bootstrap band alone (best of `repeats`).
    Returns {kind: (best seconds, all seconds, study, band seconds)}."""
    out = {}
    for kind in ("oracle", "predicted"):
        study = compute_optimal_study(con, ["bench"], "qwen-0.5b", verifier="prm", bins=kind)  # warm-up
        runs = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            study = compute_optimal_study(con, ["bench"], "qwen-0.5b", verifier="prm", bins=kind)
            runs.append(time.perf_counter() - t0)
        t, band = study.table, []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            cv_band(t.accuracy, t.budgets, t.configurations, study.bins.level, baseline=study.result.baseline)
            band.append(time.perf_counter() - t0)
        out[kind] = (min(runs), runs, study, min(band))
    return out


# ---------------------------------------------------------------- plain per-question Python reference


def ref_pass_at_k(n, c, k):
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def ref_log_comb(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) if 0 <= k <= n else -math.inf


def ref_best_of_n(correct, score, k):
    n = len(correct)
    order = sorted(range(n), key=lambda i: -score[i])
    total, pos = 0.0, 0
    while pos < n:
        end = pos
        while end + 1 < n and score[order[end + 1]] == score[order[pos]]:
            end += 1
        tied = end - pos + 1
        top = math.exp(ref_log_comb(n - pos, k) - ref_log_comb(n, k))
        rest = math.exp(ref_log_comb(n - pos - tied, k) - ref_log_comb(n, k)) if n - pos - tied >= k else 0.0
        total += (top - rest) * sum(correct[order[j]] for j in range(pos, end + 1)) / tied
        pos = end + 1
    return total


def ref_votes(answers, correct, score, k, draws, rnd):
    ok = {}
    for a, c in zip(answers, correct):
        if a is not None:
            ok.setdefault(a, []).append(c)
    ok = {a: sum(v) / len(v) for a, v in ok.items()}
    maj = wtd = 0.0
    for _ in range(draws):
        sub = rnd.sample(range(len(answers)), k)
        counts, weights = Counter(), Counter()
        for i in sub:
            if answers[i] is not None:
                counts[answers[i]] += 1
                weights[answers[i]] += score[i]
        if counts:
            top = max(counts.values())
            winners = [a for a, c in counts.items() if c == top]
            maj += sum(ok[a] for a in winners) / len(winners)
            top_w = max(weights[a] for a in counts)
            winners = [a for a in counts if weights[a] >= top_w - 1e-9 * max(1.0, abs(top_w))]
            wtd += sum(ok[a] for a in winners) / len(winners)
    return maj / draws, wtd / draws


def ref_compute_optimal(acc, levels, folds):
    n_c, n_b, n_q = len(acc), len(acc[0]), len(levels)
    out = [0.0] * n_b
    for level in sorted(set(levels)):
        for pick_fold in (0, 1):
            pick_qs = [q for q in range(n_q) if levels[q] == level and folds[q] == pick_fold]
            eval_qs = [q for q in range(n_q) if levels[q] == level and folds[q] != pick_fold]
            for b in range(n_b):
                best, best_c = -1.0, 0
                for c in range(n_c):
                    m = sum(acc[c][b][q] for q in pick_qs) / len(pick_qs)
                    if m > best:
                        best, best_c = m, c
                out[b] += sum(acc[best_c][b][q] for q in eval_qs) / n_q
    return out


def run_reference(pool, ks, bins, config_table, n_sub, n_bon, draws, seed=0):
    """Everything on plain Python lists, one question at a time. Returns (seconds extrapolated to all
    questions, per-part seconds, subset results for a correctness check)."""
    from backend.metrics.compute_optimal import fold_assignment

    t = {}
    n_q = pool.n_questions
    rows = []
    for q in range(n_q):  # the reference's own conversion to per-question lists
        v = pool.valid[q]
        rows.append(
            (
                [bool(x) for x in pool.correct[q][v]],
                [None if a < 0 else int(a) for a in pool.answer_id[q][v]],
                [float(s) for s in pool.score("prm")[q][v]],
            )
        )
    t0 = time.perf_counter()
    cov = [[ref_pass_at_k(len(c), sum(c), int(k)) for k in ks] for c, _, _ in rows]
    t["coverage"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bon = [[ref_best_of_n(c, s, int(k)) for k in ks] for c, _, s in rows[:n_bon]]
    t["best_of_n_subset"] = time.perf_counter() - t0
    t["best_of_n_scaled"] = t["best_of_n_subset"] * n_q / n_bon
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    votes = [[ref_votes(a, c, s, int(k), draws, rnd) for k in ks] for c, a, s in rows[:n_sub]]
    t["votes_subset"] = time.perf_counter() - t0
    t["votes_scaled"] = t["votes_subset"] * n_q / n_sub
    t0 = time.perf_counter()
    p1 = [sum(c) / len(c) for c, _, _ in rows]
    order = sorted(range(n_q), key=lambda q: -p1[q])
    levels = [0] * n_q
    for rank, q in enumerate(order):
        levels[q] = rank * 5 // n_q + 1
    t["bins"] = time.perf_counter() - t0
    names, acc, budgets = config_table
    acc_lists = acc.tolist()
    folds = fold_assignment(np.asarray(levels) - 1, seed).tolist()
    t0 = time.perf_counter()
    optimal = ref_compute_optimal(acc_lists, levels, folds)
    t["compute_optimal"] = time.perf_counter() - t0
    total = t["coverage"] + t["best_of_n_scaled"] + t["votes_scaled"] + 2 * t["bins"] + 2 * t["compute_optimal"]
    return total, t, dict(coverage=cov, best_of_n=bon, votes=votes, levels=levels, optimal=optimal)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--reference-questions", type=int, default=40, help="subset for the reference votes")
    ap.add_argument("--reference-bon-questions", type=int, default=200, help="subset for reference best-of-N")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of the vectorised pipeline (best kept)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        con = build_store(Path(tmp) / "store", args.questions, args.samples)
        rows = con.execute(
            "SELECT (SELECT count(*) FROM samples), (SELECT count(*) FROM scores), (SELECT count(*) FROM nodes)"
        ).fetchall()[0]
        print(
            f"store: {rows[0]:,} samples, {rows[1]:,} verifier scores, {rows[2]:,} search nodes "
            f"({len(SEARCH_CONFIGS)} configurations × {len(BUDGET_SAMPLES)} budgets × {args.questions} questions), "
            f"built in {time.perf_counter() - t0:.1f} s"
        )
        run_vectorised(con)  # warm-up: imports, DuckDB plan caches, allocator
        runs = []
        for _ in range(max(1, args.repeats)):
            t_start = time.perf_counter()
            out = run_vectorised(con)
            runs.append((time.perf_counter() - t_start, out))
        seconds, (pool, ks, cov, curves, bins, per_bin, config_table, optimal, parts) = min(runs, key=lambda r: r[0])
        print(f"vectorised runs: {', '.join(f'{r[0]:.3f}' for r in runs)} s (best kept)")
        view = time_view(con, args.repeats)
    for kind, (best, all_runs, _, band) in view.items():
        print(
            f"compute-optimal view ({kind} bins): {', '.join(f'{r:.3f}' for r in all_runs)} s (best {best:.3f} s; "
            f"of it the bootstrap band, {BAND_BOOT} resamples: {band:.3f} s)"
        )
    study = view["oracle"][2]
    t = study.table
    statuses = {name: int((t.status == code).sum()) for code, name in enumerate(STATUSES) if code}
    print(
        f"  table: {len(t.configurations)} configurations ({int((t.kind == 'search').sum())} searches) × "
        f"{len(t.budgets)} budgets ({', '.join(f'{x:.0f}' for x in t.budget_samples)} samples) × "
        f"{len(t.question_ids)} questions; non-ok cells {statuses}; notes: {list(study.notes) or 'none'}"
    )
    r = study.result
    print(
        "  compute-optimal (oracle bins) vs best-of-N at budgets (samples) "
        + ", ".join(f"{s:.0f}: {a:.3f}/{b:.3f}" for s, a, b in zip(t.budget_samples, r.accuracy, r.baseline_accuracy))
    )
    for name, s in parts.items():
        print(f"  {name:<22} {s:7.3f} s")
    print(f"vectorised total: {seconds:.3f} s  (k grid {ks.tolist()})")
    draws = curves["majority"].meta["draws"]
    n_bon = min(args.reference_bon_questions, pool.n_questions)
    ref_total, ref_parts, ref = run_reference(pool, ks, bins, config_table, args.reference_questions, n_bon, draws)
    ref_total += parts["load_pool"]  # the reference reads the same loaded pool
    for name, s in ref_parts.items():
        print(f"  reference {name:<16} {s:7.3f} s")
    print(
        f"reference total: {ref_total:.1f} s (majority/weighted votes run on {args.reference_questions} and "
        f"best-of-N on {n_bon} of {pool.n_questions} questions, each scaled to all; coverage, bins and "
        f"compute-optimal on all; includes the same {parts['load_pool']:.2f} s pool load)"
    )
    # the two implementations compute the same numbers
    cov_err = np.abs(np.asarray(ref["coverage"]) - cov.per_question).max()
    bon_err = np.abs(np.asarray(ref["best_of_n"]) - curves["best_of_n[prm]"].per_question[:n_bon]).max()
    n_sub = args.reference_questions
    ref_votes_mean = np.asarray(ref["votes"]).mean(axis=0)  # (K, 2)
    maj_gap = np.abs(ref_votes_mean[:, 0] - curves["majority"].per_question[:n_sub].mean(0)).max()
    wtd_gap = np.abs(ref_votes_mean[:, 1] - curves["weighted_best_of_n[prm]"].per_question[:n_sub].mean(0)).max()
    level_same = np.array_equal(np.asarray(ref["levels"]), bins["oracle"].level)
    co_err = np.abs(np.asarray(ref["optimal"]) - optimal["oracle"].accuracy).max()
    print(
        f"check: coverage max|Δ|={cov_err:.1e}, best-of-N max|Δ|={bon_err:.1e}, oracle bins equal={level_same}, "
        f"compute-optimal max|Δ|={co_err:.1e}; resampled curves on the subset (independent draws): "
        f"majority max|Δ|={maj_gap:.3f}, weighted max|Δ|={wtd_gap:.3f}"
    )
    res = optimal["oracle"]
    print(
        "compute-optimal (oracle bins) vs best-of-N at budgets "
        + ", ".join(f"{int(b)}: {a:.3f}/{bb:.3f}" for b, a, bb in zip(res.budgets, res.accuracy, res.baseline_accuracy))
    )
    print(f"coverage: {', '.join(f'{m:.3f}' for m in cov.mean)}")
    print(
        f"RESULT seconds={seconds:.3f} speedup_vs_reference={ref_total / seconds:.1f} "
        f"compute_optimal_view_s={view['oracle'][0]:.3f} compute_optimal_view_predicted_s={view['predicted'][0]:.3f}"
    )


if __name__ == "__main__":
    main()
