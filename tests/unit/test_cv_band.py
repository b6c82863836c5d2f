"""The bootstrap band of the cross-validated compute-optimal curve (backend.metrics.compute_optimal.cv_band)."""

import numpy as np
import pytest

from backend.metrics.compute_optimal import (
    band_resamples,
    compute_optimal,
    cv_band,
    fold_assignment,
    stratified_resample,
)

BUDGETS = np.array([1.0, 2.0, 4.0, 8.0])
NAMES = ["best_of_n", "majority", "beam", "lookahead"]


def _table(n_q: int, seed: int = 0, *, binary: bool = True):
    """(configurations, budgets, questions) with per-question skill, configurations that cross over, 0/1 cells
    (a search's pick: ties everywhere) or expected accuracies, and a few cells a configuration cannot run."""
    rng = np.random.default_rng(seed)
    ease = rng.uniform(0, 1, n_q)
    skill = np.array([0.0, 0.05, 0.15, -0.1])[:, None, None]
    slope = np.array([0.05, 0.08, 0.1, 0.12])[:, None, None]
    p = np.clip(ease[None, None, :] - 0.4 + skill + slope * np.log2(BUDGETS)[None, :, None], 0, 1)
    acc = (rng.random(p.shape) < p).astype(np.float64) if binary else p * rng.uniform(0.8, 1.0, p.shape)
    acc[2, 0, :] = np.nan  # beam cannot afford the smallest budget
    acc[3, 1, rng.choice(n_q, 2, replace=False)] = np.nan  # lookahead misses two questions at one budget
    levels = np.repeat(np.arange(1, 4), [n_q // 3, n_q // 3, n_q - 2 * (n_q // 3)])
    return acc, levels


def _brute_force(acc, levels, n_boot, seed):
    """From the definition: for each resample, the population of drawn questions (same bins, same halves), and
    the 2-fold choice run on it by `compute_optimal` itself."""
    level_idx = np.unique(levels, return_inverse=True)[1]
    fold = fold_assignment(level_idx, seed)
    out = []
    for idx in band_resamples(levels, n_boot, seed):
        assert np.array_equal(levels[idx], levels) and np.array_equal(fold[idx], fold)
        r = compute_optimal(acc[:, :, idx], BUDGETS, NAMES, levels, baseline="best_of_n", fold=fold)
        out.append(
            (
                r.accuracy,
                r.accuracy - r.baseline_accuracy,
                r.accuracy_by_bin,
                r.accuracy_by_bin - r.baseline_accuracy_by_bin,
            )
        )
    return [np.stack(x) for x in zip(*out)]


@pytest.mark.parametrize("binary", [True, False])
def test_vectorised_band_matches_the_loop_over_resamples(binary):
    acc, levels = _table(30, seed=3, binary=binary)
    band = cv_band(acc, BUDGETS, NAMES, levels, baseline="best_of_n", seed=7, n_boot=60)
    acc_r, gap_r, bin_r, gap_bin_r = _brute_force(acc, levels, 60, 7)
    for got, want in (
        (band.accuracy_samples, acc_r),
        (band.gap_samples, gap_r),
        (band.accuracy_by_bin_samples, bin_r),
        (band.gap_by_bin_samples, gap_bin_r),
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    point = compute_optimal(acc, BUDGETS, NAMES, levels, baseline="best_of_n", seed=7)
    lo, hi = np.quantile(acc_r, [0.025, 0.975], axis=0)
    ok = np.isfinite(point.accuracy)
    np.testing.assert_allclose(band.accuracy_low[ok], lo[ok], atol=1e-12)
    np.testing.assert_allclose(band.accuracy_high[ok], hi[ok], atol=1e-12)
    lo, hi = np.quantile(gap_r, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(band.gap_low[ok], lo[ok], atol=1e-12)
    np.testing.assert_allclose(band.gap_high[ok], hi[ok], atol=1e-12)
    # the selection varies across resamples (the band is not the fixed pick's bootstrap)
    assert np.ptp(acc_r[:, ok], axis=0).max() > 0


def test_band_is_undefined_where_the_curve_is():
    acc, levels = _table(30, seed=1)
    acc[:, 0, levels == 2] = np.nan  # nothing runs on bin 2 at the smallest budget
    point = compute_optimal(acc, BUDGETS, NAMES, levels, baseline="best_of_n")
    band = cv_band(acc, BUDGETS, NAMES, levels, baseline="best_of_n", n_boot=50)
    assert np.isnan(point.accuracy[0]) and np.isnan(band.accuracy_low[0]) and np.isnan(band.gap_high[0])
    assert np.isnan(band.accuracy_by_bin_low[1, 0]) and np.isfinite(band.accuracy_by_bin_low[0, 0])
    assert np.isfinite(band.accuracy_low[1:]).all()


def test_resamples_keep_every_stratum_and_its_size():
    strata = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5])
    idx = stratified_resample(strata, 500, seed=0)
    assert idx.shape == (500, strata.size)
    assert (strata[idx] == strata).all()
    # a stratum of one question always redraws it; larger strata do vary and repeat questions
    assert (idx[:, 9] == 9).all()
    assert len(np.unique(idx[:, 5])) == 4 and (np.array([len(set(r[5:9])) for r in idx]) < 4).any()
    assert np.array_equal(idx, stratified_resample(strata, 500, seed=0))
    assert not np.array_equal(idx, stratified_resample(strata, 500, seed=1))


def test_band_widens_with_fewer_questions_and_holds_the_point_estimate():
    widths = {}
    for n_q in (24, 96, 384):
        acc, levels = _table(n_q, seed=0, binary=True)
        point = compute_optimal(acc, BUDGETS, NAMES, levels, baseline="best_of_n")
        band = cv_band(acc, BUDGETS, NAMES, levels, baseline="best_of_n", n_boot=400)
        ok = np.isfinite(point.accuracy)
        widths[n_q] = float(np.mean((band.gap_high - band.gap_low)[ok]))
        assert np.all(band.accuracy_low[ok] <= band.accuracy_high[ok])
        # the percentile band brackets the estimate it resamples at most budgets (selection bias can shift it)
        assert (
            np.mean((band.accuracy_low[ok] <= point.accuracy[ok]) & (point.accuracy[ok] <= band.accuracy_high[ok]))
            >= 0.5
        )
    assert widths[24] > widths[96] > widths[384]
    # roughly 1/sqrt(n): 16× the questions, about a quarter of the width
    assert 2.0 < widths[24] / widths[384] < 8.0


def test_band_rejects_bad_input():
    acc, levels = _table(12)
    with pytest.raises(ValueError, match="n_boot"):
        cv_band(acc, BUDGETS, NAMES, levels, baseline="best_of_n", n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        cv_band(acc, BUDGETS, NAMES, levels, baseline="best_of_n", confidence=1.0)
    with pytest.raises(ValueError, match="baseline"):
        cv_band(acc, BUDGETS, NAMES, levels, baseline="nope")
    with pytest.raises(ValueError, match="fold"):
        compute_optimal(acc, BUDGETS, NAMES, levels, baseline="best_of_n", fold=np.zeros(12, dtype=int))
