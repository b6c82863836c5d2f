"""Paired statistics pinned against scipy.stats (McNemar's exact test is an exact binomial test), a brute-force
sign-flip permutation test and paired bootstrap, and their formulas; verdicts never name a side their own mean
difference contradicts; the compute-optimal policy's per-question held-out accuracy against its per-bin figure."""

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from backend.metrics import paired
from backend.metrics.compute_optimal import compute_optimal
from backend.metrics.paired import (
    bootstrap_ci,
    mcnemar_exact,
    paired_difference,
    questions_needed,
    sign_flip_test,
)


@pytest.mark.parametrize("a_better, b_better", [(0, 0), (5, 0), (0, 7), (10, 3), (3, 10), (6, 6), (50, 40), (230, 200)])
def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs(a_better, b_better):
    n = a_better + b_better
    expected = 1.0 if n == 0 else stats.binomtest(min(a_better, b_better), n, 0.5).pvalue
    assert mcnemar_exact(a_better, b_better) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="discordant counts must be >= 0"):
        mcnemar_exact(-1, 3)


def brute_force_sign_flip(d) -> float:
    """Fisher's randomisation test written out: every sign pattern of the non-zero differences, one at a time."""
    d = [x for x in d if x != 0]
    observed = abs(sum(d)) - paired.TIE_RTOL * sum(abs(x) for x in d)
    patterns = list(itertools.product((1, -1), repeat=len(d)))
    extreme = sum(abs(sum(s * x for s, x in zip(signs, d))) >= observed for signs in patterns)
    return extreme / len(patterns)


def test_binary_outcomes_give_mcnemar_and_expected_accuracies_the_sign_flip_test_of_the_mean():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, 60).astype(float), rng.integers(0, 2, 60).astype(float)
    r = paired_difference(a, b, n_boot=500)
    discordant_a, discordant_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    assert (r.a_better, r.b_better) == (discordant_a, discordant_b) and r.test == paired.MCNEMAR
    assert r.p_value == pytest.approx(
        stats.binomtest(min(discordant_a, discordant_b), discordant_a + discordant_b).pvalue
    )
    x, y = rng.random(12), rng.random(12)  # a pool rule's expected accuracies: the magnitudes count
    r = paired_difference(x, y, n_boot=500)
    assert r.test == paired.SIGN_FLIP_EXACT and r.p_value == pytest.approx(brute_force_sign_flip(x - y), abs=1e-12)
    assert r.difference == pytest.approx((x - y).mean()) and r.questions == 12
    x, y = rng.random(40), rng.random(40)
    r = paired_difference(x, y, n_boot=500)
    assert r.test == paired.SIGN_FLIP_MC and r.p_value == sign_flip_test(x - y)[0]


@pytest.mark.parametrize("seed", range(6))
def test_the_exact_sign_flip_test_matches_a_brute_force_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 11))
    d = np.round(rng.uniform(-1, 1, n), int(rng.integers(1, 3)))  # rounded: ties among |sums| do occur
    d[rng.random(n) < 0.2] = 0.0
    p, exact = sign_flip_test(d)
    assert exact and p == pytest.approx(brute_force_sign_flip(d.tolist()), abs=1e-12)


@pytest.mark.parametrize("a_better, b_better", [(0, 0), (5, 0), (0, 7), (10, 3), (6, 6), (9, 1)])
def test_on_zero_one_differences_the_sign_flip_test_is_mcnemar(a_better, b_better):
    d = np.array([1.0] * a_better + [-1.0] * b_better + [0.0] * 4)
    assert sign_flip_test(d)[0] == pytest.approx(mcnemar_exact(a_better, b_better), rel=1e-12)


def test_monte_carlo_sign_flip_estimates_the_exact_p_value(monkeypatch):
    d = np.random.default_rng(8).uniform(-0.4, 0.6, 16)
    exact, _ = sign_flip_test(d)
    monkeypatch.setattr(paired, "EXACT_MAX", 0)
    estimate, is_exact = sign_flip_test(d, n_perm=20_000, seed=3)
    # (1 + hits) / (1 + N): within 4 binomial standard errors of the exact value
    assert not is_exact and abs(estimate - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4
    assert sign_flip_test(np.full(40, 0.5))[0] == pytest.approx(1 / (1 + paired.N_PERM))  # never 0


def test_nine_small_wins_do_not_outweigh_one_large_loss():
    """The sign test said "B better (p = 0.021)" here: B wins one question of ten, by far more than A's nine wins."""
    a = np.array([0.51] * 9 + [0.05])
    b = np.array([0.50] * 9 + [0.95])
    r = paired_difference(a, b, n_boot=2000)
    assert (r.a_better, r.b_better) == (9, 1) and stats.binomtest(1, 10).pvalue < 0.05  # what the sign test saw
    assert r.difference < 0 and r.p_value == pytest.approx(1.0) and not r.significant
    assert r.verdict().startswith("not significant")


def _accuracies(binary: bool):
    """Pairs over 1-30 questions, B's accuracies shrunk by a random factor (0/1: zeroed at random) so that many
    pairs differ significantly, then the sides swapped at random so either may lead."""
    values = st.sampled_from([0.0, 1.0]) if binary else st.floats(0, 1, allow_nan=False)

    def pair(n: int):
        side = st.lists(values, min_size=n, max_size=n)
        return st.tuples(side, side, st.floats(0, 1), st.booleans())

    def tilt(p):
        a, b, shrink, swap = np.asarray(p[0]), np.asarray(p[1]), p[2], p[3]
        b = np.where(np.arange(b.size) / b.size < shrink, 0.0, b) if binary else b * shrink
        return (b, a) if swap else (a, b)

    return st.integers(1, 30).flatmap(pair).map(tilt)


@settings(max_examples=1500, deadline=None)
@given(st.booleans().flatmap(_accuracies), st.integers(0, 3))
def test_no_verdict_names_a_side_its_own_mean_difference_contradicts(pair, seed):
    a, b = np.asarray(pair[0]), np.asarray(pair[1])
    r = paired_difference(a, b, n_boot=20, n_perm=500, seed=seed)
    mirrored = paired_difference(b, a, n_boot=20, n_perm=500, seed=seed)
    verdict = r.verdict()
    named = re.match(r"(A|B) better \(p = ", verdict)
    assert 0 < r.p_value <= 1 and r.p_value == mirrored.p_value  # one test, symmetric in A and B
    if a.size <= 10:  # that test is of the mean difference: the brute-force permutation test, McNemar's on 0/1
        assert r.p_value == pytest.approx(brute_force_sign_flip((a - b).tolist()), abs=1e-12)
    assert bool(named) == r.significant
    if named:
        assert (named.group(1) == "A") == (r.difference > 0) and r.difference != 0
        assert mirrored.verdict() == verdict.replace(named.group(1), "B" if named.group(1) == "A" else "A", 1)


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
    spread = stats.norm.ppf(0.975) * np.sqrt(np.mean(d**2)) + stats.norm.ppf(0.8) * d.std(ddof=1)
    assert questions_needed(d) == math.ceil((spread / d.mean()) ** 2)  # Connor 1987 on 0/1: 4 discordant of 10
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
