"""Compute-optimal allocation (Snell et al. 2024): per difficulty bin and budget, the configuration that does
best, chosen on questions other than those it is scored on.

Choosing the best of many configurations and reporting its accuracy on the same questions rewards luck.
So within each bin the questions are split in two seeded halves: the configuration chosen on one half is
scored on the other, then the halves swap. Each question is thus scored by a configuration picked without
it, and the compute-optimal curve is the mean of those held-out scores (2-fold cross-validation). Only the
choice is held out: the bins (`levels`) are given, computed beforehand from every question, scoring half
included (`backend.metrics.study.held_out_text` says what each bin kind uses). `cv_band` gives the curve, and its
gap to the baseline, a bootstrap band over questions that re-makes the choice on every resample.

Input is a dense table accuracy[configuration, budget, question] (expected correctness; NaN where a
configuration cannot run at that budget). `strategy_table.strategy_table` builds it on a FLOPs axis from every
pool rule and search in the store; `accuracy_table` stacks pool curves on their samples axis. A configuration is
a candidate for a bin only where it covers every question of the bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.ledger import matched_compute_multiplier
from backend.metrics.curve import Curve

SNELL_R_VALUES = (0.16, 0.79, 22.0)


@dataclass(frozen=True)
class ComputeOptimalResult:
    budgets: np.ndarray  # (B,)
    configurations: list[str]  # (C,)
    levels: np.ndarray  # (L,) bin levels present
    accuracy: np.ndarray  # (B,) cross-validated compute-optimal accuracy over all questions
    accuracy_by_bin: np.ndarray  # (L, B)
    chosen: np.ndarray  # (2, L, B) configuration index chosen on selection fold 0 / 1 (-1: none runs)
    in_sample_accuracy: np.ndarray  # (B,) choose and score on the same questions: optimistic, for contrast
    baseline: str
    baseline_accuracy: np.ndarray  # (B,)
    baseline_accuracy_by_bin: np.ndarray  # (L, B)
    efficiency: np.ndarray  # (B,) budget best-of-N needs / budget compute-optimal needs, same accuracy
    efficiency_is_lower_bound: np.ndarray  # (B,) compute-optimal already matched at the smallest budget
    efficiency_by_bin: np.ndarray  # (L, B) the same ratio within each bin
    efficiency_by_bin_is_lower_bound: np.ndarray  # (L, B)
    held_out_by_question: np.ndarray  # (B, Q) each question's accuracy under the pick of the other fold of its bin

    def chosen_names(self, fold: int) -> np.ndarray:
        """(L, B) names of the configurations picked on selection fold `fold`."""
        names = np.asarray([*self.configurations, ""], dtype=object)
        return names[self.chosen[fold]]


def fold_assignment(levels, seed: int = 0) -> np.ndarray:
    """(Q,) fold 0/1 per question: within each level, a seeded random order alternates folds (halves)."""
    levels = np.asarray(levels)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(levels.size), levels))
    sorted_levels = levels[order]
    first_of_level = np.searchsorted(sorted_levels, sorted_levels, side="left")
    fold = np.empty(levels.size, dtype=np.int64)
    fold[order] = (np.arange(levels.size) - first_of_level) % 2
    return fold


def _group_means(acc: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(C, B, G) mean over each group's questions; NaN where a configuration misses any of them."""
    onehot = np.zeros((acc.shape[2], n_groups))
    onehot[np.arange(acc.shape[2]), group] = 1.0
    known = ~np.isnan(acc)
    sums = np.nan_to_num(acc) @ onehot
    counts = known.astype(np.float64) @ onehot
    size = onehot.sum(axis=0)
    full = counts == size
    return np.divide(sums, size, out=np.full(sums.shape, np.nan), where=full & (size > 0))


TIE_ATOL = 1e-12
"""Means closer than this are tied (first configuration wins): two sums of the same values in another order differ
in the last bits, and the choice must not depend on summation order (the bootstrap band sums differently)."""


def _argmax_or_none(means: np.ndarray) -> np.ndarray:
    """Index of the largest along axis 0 (first on ties, to TIE_ATOL), -1 where every entry is NaN."""
    filled = np.where(np.isnan(means), -np.inf, means)
    top = filled.max(axis=0)
    best = (filled >= top - TIE_ATOL).argmax(axis=0)
    return np.where(np.isfinite(top), best, -1)


def _take(means: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """means[idx[...], ...] along axis 0 with -1 giving NaN."""
    picked = np.take_along_axis(means, np.maximum(idx, 0)[None], axis=0)[0]
    return np.where(idx >= 0, picked, np.nan)


def accuracy_at_budget(budgets, accuracy, at) -> np.ndarray:
    """Accuracy interpolated linearly in log budget; NaN outside the measured budget range."""
    lb = np.log(np.asarray(budgets, dtype=np.float64))
    at = np.log(np.asarray(at, dtype=np.float64))
    out = np.interp(at, lb, np.asarray(accuracy, dtype=np.float64))
    return np.where((at < lb[0] - 1e-12) | (at > lb[-1] + 1e-12), np.nan, out)


def budget_to_reach(budgets, accuracy, targets) -> tuple[np.ndarray, np.ndarray]:
    """Smallest budget at which a curve reaches each target accuracy, interpolated in log budget on the
    curve's running maximum. Returns (budget, reached_at_first_budget); NaN where never reached."""
    budgets = np.asarray(budgets, dtype=np.float64)
    best = np.maximum.accumulate(np.nan_to_num(np.asarray(accuracy, dtype=np.float64), nan=-np.inf))
    targets = np.asarray(targets, dtype=np.float64)
    j = np.searchsorted(best, targets, side="left")
    j_safe = np.clip(j, 1, len(budgets) - 1)
    lo_acc, hi_acc = best[j_safe - 1], best[j_safe]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip(np.where(hi_acc > lo_acc, (targets - lo_acc) / (hi_acc - lo_acc), 1.0), 0.0, 1.0)
    # the curve is unmeasured (NaN) below the budget where it reaches the target: that budget, as a bound
    unmeasured_below = np.isneginf(lo_acc)
    frac = np.where(unmeasured_below, 1.0, frac)
    log_b = np.log(budgets[j_safe - 1]) + frac * (np.log(budgets[j_safe]) - np.log(budgets[j_safe - 1]))
    out = np.where(j == 0, budgets[0], np.exp(log_b))
    out = np.where((j >= len(budgets)) | np.isnan(targets), np.nan, out)
    return out, (j == 0) | (unmeasured_below & ~np.isnan(out))


def compute_optimal(
    accuracy,
    budgets,
    configurations: Sequence[str],
    levels,
    *,
    baseline: str,
    seed: int = 0,
    fold=None,
) -> ComputeOptimalResult:
    """Compute-optimal curve by 2-fold cross-validation within each difficulty bin (module docstring).

    accuracy: (C, B, Q) expected correctness; budgets: (B,) increasing; levels: (Q,) bin of each question;
    baseline: the configuration to compare with (best-of-N). Efficiency at budget b =
    b / (smallest budget at which compute-optimal reaches the baseline's accuracy at b). fold: (Q,) 0/1 halves to
    use instead of `fold_assignment(levels, seed)` (the bootstrap band re-runs the choice on the full data's halves)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    budgets = np.asarray(budgets, dtype=np.float64)
    levels = np.asarray(levels)
    configurations = list(configurations)
    if acc.ndim != 3:
        raise ValueError(f"accuracy must be (configurations, budgets, questions), got shape {acc.shape}")
    n_c, n_b, n_q = acc.shape
    if len(configurations) != n_c:
        raise ValueError(f"configurations has {len(configurations)} names for {n_c} rows of accuracy")
    if budgets.shape != (n_b,) or np.any(budgets <= 0) or np.any(np.diff(budgets) <= 0):
        raise ValueError(f"budgets must be {n_b} positive, strictly increasing values")
    if levels.shape != (n_q,):
        raise ValueError(f"levels must give one bin per question ({n_q}), got shape {levels.shape}")
    if baseline not in configurations:
        raise ValueError(f"baseline {baseline!r} is not a configuration; allowed: {', '.join(configurations)}")
    uniq, level_idx, sizes = np.unique(levels, return_inverse=True, return_counts=True)
    if np.any(sizes < 2):
        raise ValueError(f"bin {uniq[np.argmin(sizes)]} has fewer than 2 questions; cross-validation needs 2")
    n_l = len(uniq)
    fold = fold_assignment(level_idx, seed) if fold is None else _check_fold(fold, level_idx, n_l)
    whole = _group_means(acc, level_idx, n_l)  # (C, B, L): NaN where a configuration misses a question of the bin
    # a configuration that cannot run on every question of a bin is no candidate for it, on either fold
    halves = _group_means(acc, level_idx * 2 + fold, 2 * n_l).reshape(n_c, n_b, n_l, 2)
    halves = np.where(np.isnan(whole)[..., None], np.nan, halves)
    chosen = _argmax_or_none(halves)  # (B, L, 2): picked on each fold
    held_out = np.stack([_take(halves[..., 1], chosen[..., 0]), _take(halves[..., 0], chosen[..., 1])], -1)
    # per question: the configuration the *other* fold of its bin picked, scored on this question (NaN: none runs)
    pick = chosen[:, level_idx, 1 - fold]  # (B, Q)
    b_idx, q_idx = np.arange(n_b)[:, None], np.arange(n_q)[None, :]
    held_out_q = np.where(pick >= 0, acc[np.maximum(pick, 0), b_idx, q_idx], np.nan)
    fold_sizes = np.stack([np.bincount(level_idx[fold == f], minlength=n_l) for f in (0, 1)], -1)
    # question-weighted: fold-1 questions are scored by the fold-0 pick and vice versa
    by_bin = (held_out[..., 0] * fold_sizes[:, 1] + held_out[..., 1] * fold_sizes[:, 0]) / sizes  # (B, L)
    overall = by_bin @ sizes / n_q
    in_sample = (_take(whole, _argmax_or_none(whole)) @ sizes) / n_q
    base = whole[configurations.index(baseline)]  # (B, L)
    base_overall = base @ sizes / n_q
    needed, lower = budget_to_reach(budgets, overall, base_overall)
    per_bin = [budget_to_reach(budgets, by_bin[:, i], base[:, i]) for i in range(n_l)]
    needed_bin = np.stack([p[0] for p in per_bin]) if per_bin else np.zeros((0, n_b))
    lower_bin = np.stack([p[1] for p in per_bin]) if per_bin else np.zeros((0, n_b), bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a baseline at accuracy 0 sets no target: any budget "matches" it, so there is no ratio to report
        efficiency = np.where(base_overall > 0, budgets / needed, np.nan)
        efficiency_by_bin = np.where(base.T > 0, budgets[None, :] / needed_bin, np.nan)
    return ComputeOptimalResult(
        budgets=budgets,
        configurations=configurations,
        levels=uniq,
        accuracy=overall,
        accuracy_by_bin=by_bin.T,
        chosen=np.moveaxis(chosen, -1, 0).transpose(0, 2, 1),
        in_sample_accuracy=in_sample,
        baseline=baseline,
        baseline_accuracy=base_overall,
        baseline_accuracy_by_bin=base.T,
        efficiency=efficiency,
        efficiency_is_lower_bound=lower & (base_overall > 0),
        efficiency_by_bin=efficiency_by_bin,
        efficiency_by_bin_is_lower_bound=lower_bin & (base.T > 0),
        held_out_by_question=held_out_q,
    )


def _check_fold(fold, level_idx: np.ndarray, n_l: int) -> np.ndarray:
    fold = np.asarray(fold)
    if fold.shape != level_idx.shape or not np.isin(fold, (0, 1)).all():
        raise ValueError(f"fold must give 0 or 1 per question ({level_idx.size}), got shape {fold.shape}")
    fold = fold.astype(np.int64)
    for f in (0, 1):
        if np.bincount(level_idx[fold == f], minlength=n_l).min() == 0:
            raise ValueError(f"fold leaves a bin without a question in half {f}; each bin needs both halves")
    return fold


BAND_BOOT = 1000
"""Default bootstrap resamples of the cross-validated curve's band (bench/metrics.py measured its cost)."""
BAND_CONFIDENCE = 0.95


@dataclass(frozen=True)
class CvBand:
    """Percentile bootstrap band over questions of the cross-validated compute-optimal curve and of its gap to the
    baseline, the choice re-made on every resample (`cv_band`). Arrays as in ComputeOptimalResult; `*_samples`
    hold each resample's value, (n_boot, B) and (n_boot, L, B)."""

    n_boot: int
    confidence: float
    accuracy_low: np.ndarray  # (B,)
    accuracy_high: np.ndarray
    gap_low: np.ndarray  # (B,) compute-optimal − baseline
    gap_high: np.ndarray
    accuracy_by_bin_low: np.ndarray  # (L, B)
    accuracy_by_bin_high: np.ndarray
    gap_by_bin_low: np.ndarray  # (L, B)
    gap_by_bin_high: np.ndarray
    accuracy_samples: np.ndarray  # (n_boot, B)
    gap_samples: np.ndarray  # (n_boot, B)
    accuracy_by_bin_samples: np.ndarray  # (n_boot, L, B)
    gap_by_bin_samples: np.ndarray  # (n_boot, L, B)


def stratified_resample(strata, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, Q) question indices: position q of each resample holds a question drawn with replacement from q's
    stratum, so every stratum keeps its size (and the strata vector is the same for every resample)."""
    strata = np.asarray(strata)
    order = np.argsort(strata, kind="stable")
    _, start, size = np.unique(strata[order], return_index=True, return_counts=True)
    s_idx = np.unique(strata, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    within = (rng.random((n_boot, strata.size)) * size[s_idx]).astype(np.int64)  # uniform on 0 .. size - 1
    return order[start[s_idx][None, :] + within]


def band_resamples(levels, n_boot: int = BAND_BOOT, seed: int = 0) -> np.ndarray:
    """The resamples `cv_band` uses: stratified within each (bin, half) of `fold_assignment(levels, seed)`, drawn
    from their own stream of `seed` (not the halves' one)."""
    level_idx = np.unique(np.asarray(levels), return_inverse=True)[1]
    fold = fold_assignment(level_idx, seed)
    return stratified_resample(
        level_idx * 2 + fold, n_boot, int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    )


def cv_band(
    accuracy,
    budgets,
    configurations: Sequence[str],
    levels,
    *,
    baseline: str,
    seed: int = 0,
    n_boot: int = BAND_BOOT,
    confidence: float = BAND_CONFIDENCE,
) -> CvBand:
    """How much the cross-validated compute-optimal curve, and its gap to the baseline, would move on another draw
    of questions: a percentile bootstrap over questions (Efron & Tibshirani 1993, ch. 13) of the whole
    procedure, the 2-fold choice re-made on every resample, so the band carries the selection's variability too.

    Each resample draws, within every bin and each of its two halves (`fold_assignment(levels, seed)`, the halves
    `compute_optimal` uses), as many questions as it holds, with replacement; the choice is then made on one
    resampled half and scored on the other, exactly as `compute_optimal(accuracy[:, :, idx], …, fold=fold)`
    would on the resampled population (tests/unit/test_cv_band.py checks that loop against this one). Drawing
    within the halves keeps every bin's and half's size and never puts a copy of a question on both sides of the
    split (a choice scored on a question it was made on is what the split exists to prevent). The bins are the
    full data's: they are computed once from every question before the choice (module docstring), so resampling
    them would measure a binning the curve never used; and a bin recomputed on a resample could change size or
    vanish. Vectorised: each resample is a vector of per-question multiplicities, and the per-half means of every
    configuration × budget for all resamples are one matrix product per (bin, half)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    budgets = np.asarray(budgets, dtype=np.float64)
    configurations = list(configurations)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    # the same checks and halves as the point estimate (and its errors, in one place)
    point = compute_optimal(acc, budgets, configurations, levels, baseline=baseline, seed=seed)
    n_c, n_b, n_q = acc.shape
    level_idx = np.unique(np.asarray(levels), return_inverse=True)[1]
    n_l = len(point.levels)
    fold = fold_assignment(level_idx, seed)
    idx = band_resamples(levels, n_boot, seed)  # (R, Q)
    offsets = (np.arange(n_boot) * n_q)[:, None]  # multiplicity of each question in each resample
    counts = np.bincount((idx + offsets).ravel(), minlength=n_boot * n_q).reshape(n_boot, n_q).astype(np.float64)
    filled = np.nan_to_num(acc).reshape(n_c * n_b, n_q)
    known = ~np.isnan(acc).reshape(n_c * n_b, n_q)
    # (L, 2, C·B, R): each (bin, half) block written whole, resamples last (contiguous matrix products)
    halves = np.empty((n_l, 2, n_c * n_b, n_boot))
    full = np.empty((n_l, 2, n_c * n_b, n_boot), dtype=bool)
    size = np.zeros((n_l, 2))
    # 2 × bins matrix products, each (C·B, members) @ (members, R); einsum's own loop, not a threaded BLAS, whose
    # spinning threads ran 5-40× slower on a busy 2-core machine (measured for bench/metrics.py's table)
    for lv in range(n_l):
        for f in (0, 1):
            m = (level_idx == lv) & (fold == f)
            size[lv, f] = m.sum()
            w = np.ascontiguousarray(counts[:, m].T)
            halves[lv, f] = np.einsum("cq,qr->cr", filled[:, m], w) / size[lv, f]
            gaps = ~known[:, m].all(axis=1)  # rows missing a question here: count the drawn ones they cover
            full[lv, f] = True
            full[lv, f, gaps] = np.einsum("cq,qr->cr", known[gaps][:, m].astype(np.float64), w) == size[lv, f]
    candidate = full.all(axis=1, keepdims=True)  # covers every drawn question of the bin, on both halves
    h = np.moveaxis(np.where(candidate, halves, np.nan).reshape(n_l, 2, n_c, n_b, n_boot), 2, 0)  # (C, L, 2, B, R)
    chosen = _argmax_or_none(h)  # (L, 2, B, R): picked on each half
    held_1, held_0 = _take(h[:, :, 1], chosen[:, 0]), _take(h[:, :, 0], chosen[:, 1])  # (L, B, R) each
    sizes = size.sum(axis=1)
    n0, n1, nl = (x[:, None, None] for x in (size[:, 0], size[:, 1], sizes))
    by_bin = (held_1 * n1 + held_0 * n0) / nl  # (L, B, R)
    overall = np.tensordot(sizes, by_bin, axes=1) / n_q  # (B, R)
    base = h[configurations.index(baseline)]  # (L, 2, B, R)
    base_bin = (base[:, 0] * n0 + base[:, 1] * n1) / nl
    base_overall = np.tensordot(sizes, base_bin, axes=1) / n_q
    tail = (1.0 - confidence) / 2.0

    def band(x: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.quantile(x, [tail, 1.0 - tail], axis=0)
        return np.where(finite, low, np.nan), np.where(finite, high, np.nan)

    acc_r, gap_r = overall.T, (overall - base_overall).T  # (R, B)
    bin_r, gap_bin_r = by_bin.transpose(2, 0, 1), (by_bin - base_bin).transpose(2, 0, 1)  # (R, L, B)
    # where the point estimate is undefined (no configuration covers a bin, the baseline misses questions) so is
    # its band; a resample can only gain candidates (it draws a subset of the questions), never lose one
    ok = np.isfinite(point.accuracy)
    gap_ok = ok & np.isfinite(point.baseline_accuracy)
    ok_bin = np.isfinite(point.accuracy_by_bin)
    gap_ok_bin = ok_bin & np.isfinite(point.baseline_accuracy_by_bin)
    return CvBand(
        n_boot,
        confidence,
        *band(acc_r, ok),
        *band(gap_r, gap_ok),
        *band(bin_r, ok_bin),
        *band(gap_bin_r, gap_ok_bin),
        accuracy_samples=acc_r,
        gap_samples=gap_r,
        accuracy_by_bin_samples=bin_r,
        gap_by_bin_samples=gap_bin_r,
    )


def accuracy_table(curves: Mapping[str, Curve], budgets) -> tuple[list[str], np.ndarray]:
    """Stack pool curves into (configurations, budgets, questions), reading each curve's per-question values
    at k = budget (budgets in samples per question; NaN where a curve has no such k)."""
    budgets = np.asarray(budgets)
    names = list(curves)
    if not names:
        raise ValueError("curves is empty; give at least one configuration")
    ids = curves[names[0]].question_ids
    out = np.full((len(names), len(budgets), len(ids)), np.nan)
    for c, name in enumerate(names):
        curve = curves[name]
        if not np.array_equal(curve.question_ids, ids):
            raise ValueError(f"curve {name!r} covers other questions than {names[0]!r}; use one question set")
        pos = np.searchsorted(curve.k, budgets)
        hit = (pos < len(curve.k)) & (curve.k[np.minimum(pos, len(curve.k) - 1)] == budgets)
        out[c][hit] = curve.per_question[:, pos[hit]].T
    return names, out


def flops_matched_comparison(
    result: ComputeOptimalResult,
    size_ratio: float,
    large_model_accuracy,
    *,
    r_values: Sequence[float] = SNELL_R_VALUES,
    sample_budget: float,
) -> pd.DataFrame:
    """Snell §7: is test-time compute on the small model worth a model `size_ratio`× larger?

    The larger model answers with one sample. For each R = D_inference / D_pretrain, matching total FLOPs gives
    the small model multiplier = M + 3·(M−1)/R (ledger.matched_compute_multiplier) times the inference tokens,
    i.e. a budget of multiplier × `sample_budget`, the small model's one-sample cost in the units of
    result.budgets (1 on a samples axis; the pool's one-sample FLOPs, `StrategyTable.one_sample_flops`, on FLOPs); the small model's compute-optimal accuracy there (interpolated in log budget,
    NaN outside the measured range) is set against the larger model's. large_model_accuracy: a float for all
    questions, or one value per bin level (then rows per bin too)."""
    large = np.atleast_1d(np.asarray(large_model_accuracy, dtype=np.float64))
    per_bin = large.size > 1
    if per_bin and large.size != len(result.levels):
        raise ValueError(f"large_model_accuracy has {large.size} values for {len(result.levels)} bins")
    rows = []
    for r in r_values:
        mult = matched_compute_multiplier(size_ratio, r)
        budget = sample_budget * mult
        targets = [("all", result.accuracy, float(large[0]) if not per_bin else np.nan)]
        if per_bin:
            targets = [(lv, result.accuracy_by_bin[i], float(large[i])) for i, lv in enumerate(result.levels)]
        for level, curve, large_acc in targets:
            small = float(accuracy_at_budget(result.budgets, curve, budget))
            rows.append(
                dict(
                    R=r,
                    level=level,
                    multiplier=mult,
                    small_model_budget=budget,
                    small_model_accuracy=small,
                    large_model_accuracy=large_acc,
                    small_minus_large=small - large_acc,
                )
            )
    return pd.DataFrame(rows)
