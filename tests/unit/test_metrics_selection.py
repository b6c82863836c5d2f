"""Selection curves against brute-force enumeration of every k-subset of small pools."""

import itertools

import numpy as np
import pytest

from backend.metrics.pools import pool_from_arrays
from backend.metrics.selection import (
    answer_correctness,
    best_of_n_curve,
    majority_curve,
    prefix_vote,
    selection_curves,
    weighted_best_of_n_curve,
)


def _brute(valid, correct, answer, score, k):
    """Mean over all k-subsets of (best-of-N, majority, weighted) with the documented tie rules."""
    idx = np.flatnonzero(valid)
    ans_ok = {}
    for a in set(answer[idx]) - {-1}:
        members = idx[answer[idx] == a]
        ans_ok[a] = correct[members].mean()
    bon = maj = wtd = 0.0
    subsets = list(itertools.combinations(idx, k))
    for sub in subsets:
        sub = np.array(sub)
        s = np.where(np.isnan(score[sub]), -np.inf, score[sub])
        top = sub[s == s.max()]
        bon += correct[top].mean()
        voted = [a for a in answer[sub] if a != -1]
        if voted:
            counts = {a: voted.count(a) for a in set(voted)}
            best = max(counts.values())
            winners = [a for a, c in counts.items() if c == best]
            maj += np.mean([ans_ok[a] for a in winners])
            weights = {a: sum(0.0 if np.isnan(score[i]) else score[i] for i in sub if answer[i] == a) for a in counts}
            best_w = max(weights.values())
            winners = [a for a, w in weights.items() if w == best_w]
            wtd += np.mean([ans_ok[a] for a in winners])
    n = len(subsets)
    return bon / n, maj / n, wtd / n


def _random_pools(seed, n_questions=6, width=9, ragged=False):
    rng = np.random.default_rng(seed)
    answer = rng.integers(-1, 4, size=(n_questions, width))  # few answers: many vote ties
    correct_answer = rng.integers(0, 4, size=(n_questions, 1))
    correct = answer == correct_answer
    score = rng.integers(0, 5, size=(n_questions, width)) / 4.0  # exact binary fractions: ties are real ties
    score[rng.random(score.shape) < 0.1] = np.nan
    valid = np.ones_like(correct)
    if ragged:
        sizes = rng.integers(5, width + 1, size=n_questions)
        valid = np.arange(width)[None, :] < sizes[:, None]
    return pool_from_arrays(correct, answer, {"prm": score}, valid=valid)


@pytest.mark.parametrize("seed,ragged", [(0, False), (1, False), (2, True), (3, True)])
def test_selection_matches_brute_force(seed, ragged):
    pool = _random_pools(seed, ragged=ragged)
    n_min = int(pool.n.min())
    ks = [1, 2, 3, n_min - 1, n_min]
    curves = selection_curves(pool, "prm", ks, draws=3000, seed=7, confidence=0.999, n_boot=0)
    bon, maj, wtd = curves["best_of_n[prm]"], curves["majority"], curves["weighted_best_of_n[prm]"]
    assert bon.exact and not maj.exact and not wtd.exact
    for j, k in enumerate(sorted(set(ks))):
        truth = np.array(
            [
                _brute(pool.valid[q], pool.correct[q], pool.answer_id[q], pool.score("prm")[q], k)
                for q in range(pool.n_questions)
            ]
        )
        # exact where computed exactly, per question
        np.testing.assert_allclose(bon.per_question[:, j], truth[:, 0], rtol=0, atol=1e-12)
        # within the reported resampling band where resampled
        for curve, col in ((maj, 1), (wtd, 2)):
            expected = truth[:, col].mean()
            assert curve.mc_low[j] - 1e-12 <= expected <= curve.mc_high[j] + 1e-12, (curve.name, k)
            assert curve.mc_high[j] - curve.mc_low[j] < 0.03


@pytest.mark.parametrize("seed,ragged", [(4, False), (5, True)])
def test_prefix_vote_is_the_vote_over_exactly_the_first_samples(seed, ragged):
    """What an adaptive run selects: the one k-subset that is each question's prefix, by the same tie rules."""
    pool = _random_pools(seed, ragged=ragged)
    n = np.random.default_rng(seed).integers(0, pool.n + 1)
    got_majority, got_weighted = prefix_vote(pool, n), prefix_vote(pool, n, pool.score("prm"))
    for q in range(pool.n_questions):
        prefix = pool.valid[q] & (np.arange(pool.valid.shape[1]) < n[q])
        _, maj, wtd = (
            (0.0, 0.0, 0.0)
            if n[q] == 0
            else _brute(prefix, pool.correct[q], pool.answer_id[q], pool.score("prm")[q], int(n[q]))
        )
        assert (got_majority[q], got_weighted[q]) == pytest.approx((maj, wtd), abs=1e-12), q


def test_first_k_samples_are_not_what_is_measured():
    # the first sample of every pool is correct and the rest wrong: a first-k reading would give 1.0
    correct = np.zeros((3, 8), dtype=bool)
    correct[:, 0] = True
    pool = pool_from_arrays(correct, np.where(correct, 0, np.arange(8)[None, :]), {"v": np.ones((3, 8))})
    curves = selection_curves(pool, "v", [1], draws=400, seed=0, n_boot=0)
    assert curves["best_of_n[v]"].mean[0] == pytest.approx(1 / 8, abs=1e-12)
    assert curves["majority"].mean[0] == pytest.approx(1 / 8, abs=0.03)
    assert curves["weighted_best_of_n[v]"].mean[0] == pytest.approx(1 / 8, abs=0.03)


def test_majority_is_exact_at_full_pool_and_breaks_ties_uniformly():
    # two answers tied 2-2 in the whole pool: the vote is a coin flip, expectation 0.5, no sampling noise
    answer = np.array([[0, 0, 1, 1]])
    pool = pool_from_arrays(answer == 0, answer)
    curve = majority_curve(pool, [4], draws=8, n_boot=0)
    assert curve.mean[0] == 0.5 and curve.mc_low[0] == curve.mc_high[0] == 0.5


def test_no_answer_samples_never_win_the_vote():
    answer = np.array([[-1, -1, -1, 0]])  # the only real answer is correct
    pool = pool_from_arrays(np.array([[False, False, False, True]]), answer, {"v": [[0.9, 0.9, 0.9, 0.1]]})
    assert majority_curve(pool, [4], draws=4, n_boot=0).mean[0] == 1.0
    assert weighted_best_of_n_curve(pool, "v", [4], draws=4, n_boot=0).mean[0] == 1.0
    # best-of-N takes the top-scored sample, whatever its answer
    assert best_of_n_curve(pool, "v", [4], n_boot=0).mean[0] == 0.0
    # and a subset with no answer at all scores 0: k=1 picks the real answer 1 time in 4
    assert majority_curve(pool, [1], draws=2000, n_boot=0).mean[0] == pytest.approx(0.25, abs=0.03)


def test_weighted_vote_can_beat_majority():
    # three wrong samples share a low-score answer; two correct ones share a high-score answer
    answer = np.array([[0, 0, 0, 1, 1]])
    score = np.array([[0.1, 0.1, 0.1, 0.9, 0.9]])
    pool = pool_from_arrays(answer == 1, answer, {"v": score})
    assert majority_curve(pool, [5], draws=4, n_boot=0).mean[0] == 0.0
    assert weighted_best_of_n_curve(pool, "v", [5], draws=4, n_boot=0).mean[0] == 1.0


def test_answer_correctness_is_the_fraction_of_correct_samples_per_answer():
    answer = np.array([[0, 0, 1, -1]])
    correct = np.array([[True, False, False, False]])
    ok = answer_correctness(np.ones((1, 4), dtype=bool), correct, answer)
    assert ok.tolist() == [[0.5, 0.0]]


def test_unknown_verifier_and_too_few_draws_are_clear_errors():
    pool = pool_from_arrays(np.ones((2, 4), dtype=bool), scores={"prm": np.ones((2, 4))})
    with pytest.raises(ValueError, match="verifier 'orm' is not in this pool; allowed: prm"):
        best_of_n_curve(pool, "orm")
    with pytest.raises(ValueError, match="draws must be >= 2"):
        majority_curve(pool, draws=1)


def test_curves_are_reproducible_with_the_seed():
    pool = _random_pools(5, n_questions=20, width=16)
    a = selection_curves(pool, "prm", draws=16, seed=3)
    b = selection_curves(pool, "prm", draws=16, seed=3)
    for name in a:
        np.testing.assert_array_equal(a[name].mean, b[name].mean)
