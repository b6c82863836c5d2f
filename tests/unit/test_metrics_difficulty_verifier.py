import numpy as np
import pytest

from backend.metrics.coverage import coverage_curve
from backend.metrics.difficulty import curves_by_bin, oracle_bins, predicted_bins, quantile_levels
from backend.metrics.pools import pool_from_arrays
from backend.metrics.selection import best_of_n_curve, selection_curves
from backend.metrics.verifier_quality import verifier_quality, verifier_quality_table


def test_quantile_levels_are_equal_size_and_level_1_is_easiest():
    values = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.0, 1.0, 0.2, 0.6, 0.4])
    level = quantile_levels(values, 5)
    assert np.bincount(level).tolist() == [0, 2, 2, 2, 2, 2]
    assert level[values.argmax()] == 1 and level[values.argmin()] == 5
    with pytest.raises(ValueError, match="need at least n_bins=5 questions"):
        quantile_levels([0.1, 0.2], 5)


def test_oracle_and_predicted_bins_and_curves_per_bin():
    rng = np.random.default_rng(0)
    p = np.linspace(0.02, 0.98, 50)
    correct = rng.random((50, 20)) < p[:, None]
    score = np.where(correct, 0.8, 0.3) + rng.normal(0, 0.05, correct.shape)  # a decent verifier
    pool = pool_from_arrays(correct, scores={"prm": score})
    oracle = oracle_bins(pool)
    assert oracle.kind == "oracle" and np.bincount(oracle.level).tolist() == [0, 10, 10, 10, 10, 10]
    np.testing.assert_allclose(oracle.value, correct.mean(1))
    predicted = predicted_bins(pool, "prm")
    # no ground truth used, yet a verifier that separates right from wrong orders questions alike
    assert np.corrcoef(predicted.level, oracle.level)[0, 1] > 0.9
    per_bin = curves_by_bin(coverage_curve, pool, oracle, [1, 4], n_boot=0)
    assert sorted(per_bin) == [1, 2, 3, 4, 5]
    assert per_bin[1].mean[0] > per_bin[5].mean[0]  # level 1 is easiest
    assert len(per_bin[3].question_ids) == 10
    bon = curves_by_bin(best_of_n_curve, pool, predicted, "prm", [1, 4], n_boot=0)
    assert bon[1].mean[1] > bon[5].mean[1]


def test_predicted_bins_need_scores():
    pool = pool_from_arrays(np.ones((5, 2), dtype=bool), scores={"prm": np.full((5, 2), np.nan)})
    with pytest.raises(ValueError, match="verifier 'prm' scored no sample of question"):
        predicted_bins(pool, "prm")


def test_false_positive_rate_and_ceiling():
    # question 0: 1 correct of 4, the verifier accepts the correct one and one wrong one
    # question 1: never correct, the verifier accepts one wrong sample -> ceiling 0 there
    correct = np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    score = np.array([[0.9, 0.8, 0.1, 0.2], [0.7, 0.1, 0.1, np.nan]])
    pool = pool_from_arrays(correct, scores={"v": score})
    q = verifier_quality(pool, "v", 0.5)
    assert q.false_positive_rate == pytest.approx(2 / 6)  # 2 accepted of 6 scored wrong
    assert q.true_positive_rate == 1.0
    assert q.precision == pytest.approx(1 / 3)
    assert q.per_question_ceiling.tolist() == [0.5, 0.0]
    assert q.ceiling == 0.25
    p0 = 1 / 4
    assert q.ceiling_from_rates == pytest.approx((p0 / (p0 + (1 - p0) / 3) + 0.0) / 2)
    assert q.scored_samples == 7
    # AUROC over the 7 scored samples: the one correct (0.9) beats all 6 wrong ones
    assert q.auroc == 1.0


def test_auroc_counts_pairs_and_ties_half():
    from backend.metrics.verifier_quality import auroc

    scores = np.array([0.9, 0.5, 0.5, 0.1, 0.7])
    correct = np.array([True, True, False, False, False])
    # pairs (correct, wrong): 0.9 beats 0.5, 0.1, 0.7; 0.5 ties 0.5, beats 0.1, loses to 0.7 -> (3 + 1.5) / 6
    assert auroc(scores, correct) == pytest.approx(4.5 / 6)
    assert auroc(-scores, correct) == pytest.approx(1 - 4.5 / 6)  # a verifier preferring wrong answers: below 0.5
    assert np.isnan(auroc(scores, np.ones(5, bool)))
    rng = np.random.default_rng(0)
    s, y = rng.random(300), rng.random(300) < 0.4
    pairs = (s[y][:, None] > s[~y][None, :]).mean()  # brute force over every pair
    assert auroc(s, y) == pytest.approx(pairs)


def test_best_of_n_accuracy_stays_under_the_ceiling_as_n_grows():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0, 0.3, 200)
    correct = rng.random((200, 64)) < p[:, None]
    # an imperfect verifier: high score for every correct sample, and for 20% of the wrong ones
    false_pos = rng.random(correct.shape) < 0.2
    score = np.where(correct | false_pos, 0.9, 0.1) + rng.uniform(0, 0.01, correct.shape)
    pool = pool_from_arrays(correct, scores={"v": score})
    q = verifier_quality(pool, "v", 0.5)
    assert q.false_positive_rate == pytest.approx(0.2, abs=0.02)
    bon = best_of_n_curve(pool, "v", [1, 8, 64], n_boot=0)
    cov = coverage_curve(pool, [64], n_boot=0)
    assert bon.mean[-1] <= q.ceiling + 0.02
    assert cov.mean[0] > q.ceiling + 0.3  # coverage keeps climbing, verifier selection does not
    table = verifier_quality_table(pool, {"v": 0.5})
    assert table.loc[0, "verifier"] == "v" and table.loc[0, "ceiling"] == pytest.approx(q.ceiling)
    assert table.loc[0, "auroc"] == pytest.approx(q.auroc) and q.auroc > 0.9


def test_restricting_a_curve_to_a_bin_equals_computing_it_on_the_bin():
    rng = np.random.default_rng(4)
    answer = rng.integers(-1, 5, size=(30, 12))
    pool = pool_from_arrays(answer == 0, answer, {"v": rng.random((30, 12))})
    bins = oracle_bins(pool)
    full = selection_curves(pool, "v", [1, 3, 12], draws=8, seed=2, n_boot=100)
    for name, curve in full.items():
        by_bin = curves_by_bin(curve, None, bins, n_boot=100, seed=2)
        for level, mask in bins.masks().items():
            direct = selection_curves(pool, "v", [1, 3, 12], questions=mask, draws=8, seed=2, n_boot=100)[name]
            np.testing.assert_allclose(by_bin[level].per_question, direct.per_question, atol=1e-12)
            np.testing.assert_allclose(by_bin[level].mean, direct.mean, atol=1e-12)
            np.testing.assert_allclose(by_bin[level].mc_high, direct.mc_high, atol=1e-12)
            np.testing.assert_allclose(by_bin[level].high, direct.high, atol=1e-12)
    with pytest.raises(ValueError, match="bins cover 30 questions but the curve has 6"):
        curves_by_bin(full["majority"].restrict(bins.mask(1)), None, bins)
