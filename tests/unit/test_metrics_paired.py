"""Paired statistics pinned against scipy.stats (McNemar's exact test is an exact binomial test), a brute-force
paired bootstrap, and their formulas; the compute-optimal policy's per-question held-out accuracy against its
per-bin figure."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from backend.metrics import paired
from backend.metrics.compute_optimal import compute_optimal
from backend.metrics.paired import bootstrap_ci, mcnemar_exact, paired_difference, questions_needed


@pytest.mark.parametrize("a_better, b_better", [(0, 0), (5, 0), (0, 7), (10, 3), (3, 10), (6, 6), (50, 40), (230, 200)])
def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs(a_better, b_better):
    n = a_better + b_better
    expected = 1.0 if n == 0 else stats.binomtest(min(a_better, b_better), n, 0.5).pvalue
    assert mcnemar_exact(a_better, b_better) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="discordant counts must be >= 0"):
        mcnemar_exact(-1, 3)


def test_binary_outcomes_give_mcnemar_and_expected_accuracies_the_sign_test():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, 60).astype(float), rng.integers(0, 2, 60).astype(float)
    r = paired_difference(a, b, n_boot=500)
    discordant_a, discordant_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    assert (r.a_better, r.b_better) == (discordant_a, discordant_b)
    assert r.p_value == pytest.approx(
        stats.binomtest(min(discordant_a, discordant_b), discordant_a + discordant_b).pvalue
    )
    x, y = rng.random(40), rng.random(40)  # a pool rule's expected accuracies: the sign of each difference
    r = paired_difference(x, y, n_boot=500)
    up = int((x > y).sum())
    assert r.p_value == pytest.approx(stats.binomtest(up, 40, 0.5).pvalue)
    assert r.difference == pytest.approx((x - y).mean()) and r.questions == 40


def test_bootstrap_matches_a_brute_force_loop_over_the_same_draws():
    d = np.array([1.0, 0.0, -1.0, 0.5, 0.25, 1.0, 0.0])
    rng = np.random.default_rng(11)
    means = []
    for start in range(0, 5000, paired._CHUNK):  # the same draws, one resample at a time
        block = rng.integers(0, d.size, size=(min(paired._CHUNK, 5000 - start), d.size))
        means.extend(sum(d[i] for i in row) / d.size for row in block)
    low, high = np.quantile(means, [0.025, 0.975])
    assert bootstrap_ci(d, n_boot=5000, seed=11) == pytest.approx((low, high), abs=1e-12)


def test_bootstrap_interval_approaches_the_exact_bootstrap_distribution():
    d = np.array([1.0, 0.0, 0.0, -1.0, 1.0])
    exact = sorted(sum(d[i] for i in idx) / d.size for idx in itertools.product(range(d.size), repeat=d.size))
    cdf = np.arange(1, len(exact) + 1) / len(exact)
    low = exact[int(np.searchsorted(cdf, 0.025))]
    high = exact[int(np.searchsorted(cdf, 0.975))]
    got = bootstrap_ci(d, n_boot=100_000, seed=1)
    assert got[0] == pytest.approx(low, abs=0.21) and got[1] == pytest.approx(high, abs=0.21)  # a grid of 0.2
    assert got[0] < d.mean() < got[1]


def test_questions_needed_is_the_paired_normal_formula():
    d = np.array([1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert questions_needed(d) == math.ceil((z * d.std(ddof=1) / d.mean()) ** 2)
    assert questions_needed(np.zeros(5)) is None  # no difference observed: no number of questions finds one
    assert questions_needed(np.ones(3)) == 6  # all one way: the exact test first reaches 0.05 at 6 questions


def test_verdicts_say_which_is_better_or_how_many_questions_would_tell():
    assert paired_difference(np.ones(12), np.zeros(12), n_boot=200).verdict().startswith("A better (p = ")
    r = paired_difference(np.array([1.0, 0, 1, 0]), np.array([0.0, 1, 0, 0]), n_boot=200)
    assert not r.significant and r.more_questions is not None and r.more_questions > 0
    assert r.verdict().startswith("not significant (p = ") and "more questions to tell apart" in r.verdict()
    assert paired_difference(np.ones(3), np.ones(3), n_boot=200).verdict() == "no difference (p = 1)"
    nothing = paired_difference(np.array([np.nan, 1.0]), np.array([0.0, np.nan]))
    assert nothing.questions == 0 and nothing.verdict() == "no question ran under both"


def test_held_out_accuracy_per_question_averages_to_the_per_bin_figure():
    rng = np.random.default_rng(5)
    acc = rng.random((4, 3, 30))
    acc[2, 0, :5] = np.nan  # a configuration that misses questions of a bin at one budget is no candidate there
    levels = np.repeat([1, 2, 3], 10)
    r = compute_optimal(acc, [1.0, 2.0, 4.0], ["a", "b", "c", "d"], levels, baseline="a")
    for i, lv in enumerate(r.levels):
        np.testing.assert_allclose(r.held_out_by_question[:, levels == lv].mean(axis=1), r.accuracy_by_bin[i])
    np.testing.assert_allclose(r.held_out_by_question.mean(axis=1), r.accuracy)
