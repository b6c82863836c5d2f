import numpy as np
import pytest

from backend.ledger import matched_compute_multiplier
from backend.metrics.compute_optimal import (
    accuracy_at_budget,
    accuracy_table,
    budget_to_reach,
    compute_optimal,
    flops_matched_comparison,
    fold_assignment,
)
from backend.metrics.pools import pool_from_arrays
from backend.metrics.selection import selection_curves

BUDGETS = np.array([1.0, 2.0, 4.0, 8.0, 16.0])


def _honest_table(n_q=40, seed=0):
    """best-of-N improves slowly with budget; 'search' is better everywhere (2× more efficient)."""
    rng = np.random.default_rng(seed)
    base = 0.2 + 0.1 * np.log2(BUDGETS)  # 0.2 .. 0.6
    search = 0.2 + 0.1 * np.log2(2 * BUDGETS)  # reaches best-of-N's accuracy at half the budget
    noise = rng.normal(0, 0.01, (2, len(BUDGETS), n_q))
    acc = np.stack([np.repeat(base[:, None], n_q, 1), np.repeat(search[:, None], n_q, 1)]) + noise
    return ["best_of_n", "search"], np.clip(acc, 0, 1)


def test_fold_assignment_halves_every_bin_and_depends_on_seed():
    levels = np.repeat([1, 2, 3], [10, 7, 4])
    fold = fold_assignment(levels, seed=1)
    for lv in (1, 2, 3):
        assert abs(np.sum(fold[levels == lv] == 0) - np.sum(fold[levels == lv] == 1)) <= 1
    assert not np.array_equal(fold, fold_assignment(levels, seed=2))
    assert np.array_equal(fold, fold_assignment(levels, seed=1))


def test_planted_configuration_that_wins_only_on_the_selection_fold_is_never_rewarded():
    names, acc = _honest_table()
    levels = np.repeat([1, 2], 20)
    seed = 5
    fold = fold_assignment(np.unique(levels, return_inverse=True)[1], seed)
    # perfect on fold-0 questions, zero on fold-1 questions, at every budget
    cheat = np.repeat(np.where(fold == 0, 1.0, 0.0)[None, :], len(BUDGETS), 0)
    with_cheat = compute_optimal(
        np.concatenate([acc, cheat[None]]), BUDGETS, names + ["cheat"], levels, baseline="best_of_n", seed=seed
    )
    honest = compute_optimal(acc, BUDGETS, names, levels, baseline="best_of_n", seed=seed)
    # the plant is picked on fold 0 (where it looks perfect) ...
    assert (with_cheat.chosen_names(0) == "cheat").all()
    # ... but it is scored on fold 1, where it gets 0: the reported curve never credits its fold-0 score
    assert np.all(with_cheat.accuracy < honest.accuracy)
    assert np.all(with_cheat.accuracy_by_bin <= honest.accuracy_by_bin + 1e-12)
    fold1_search = acc[1][:, fold == 1].mean(1)
    np.testing.assert_allclose(with_cheat.accuracy, (acc[1][:, fold == 0].sum(1) + 0.0) / len(fold), atol=1e-9)
    assert np.all(with_cheat.accuracy < fold1_search)
    # choosing and scoring on the same questions would have rewarded it wherever honest configs stay < 0.5
    rewarded = honest.in_sample_accuracy < 0.5
    assert rewarded.sum() >= 2
    np.testing.assert_allclose(with_cheat.in_sample_accuracy[rewarded], 0.5)


def test_compute_optimal_curve_and_efficiency_against_best_of_n():
    names, acc = _honest_table()
    levels = np.repeat([1, 2, 3, 4], 10)
    res = compute_optimal(acc, BUDGETS, names, levels, baseline="best_of_n", seed=0)
    assert (res.chosen_names(0) == "search").all() and (res.chosen_names(1) == "search").all()
    np.testing.assert_allclose(res.accuracy, acc[1].mean(1), atol=1e-12)
    np.testing.assert_allclose(res.baseline_accuracy, acc[0].mean(1), atol=1e-12)
    # search reaches best-of-N's accuracy at half the budget: efficiency 2 (noise aside)
    np.testing.assert_allclose(res.efficiency[1:], 2.0, rtol=0.1)
    assert res.efficiency_is_lower_bound[0]  # already matched at the smallest budget
    assert res.accuracy_by_bin.shape == (4, len(BUDGETS))


def test_configurations_unavailable_at_a_budget_are_skipped():
    names, acc = _honest_table()
    acc[1, :2] = np.nan  # search cannot run at budgets 1 and 2
    res = compute_optimal(acc, BUDGETS, names, np.repeat([1, 2], 20), baseline="best_of_n")
    assert (res.chosen_names(0)[:, :2] == "best_of_n").all()
    assert (res.chosen_names(0)[:, 2:] == "search").all()


def test_budget_to_reach_interpolates_in_log_budget():
    budgets = np.array([1.0, 4.0, 16.0])
    acc = np.array([0.2, 0.4, 0.5])
    needed, first = budget_to_reach(budgets, acc, [0.3, 0.2, 0.1, 0.45, 0.6])
    np.testing.assert_allclose(needed[:4], [2.0, 1.0, 1.0, 8.0])
    assert np.isnan(needed[4]) and first.tolist() == [False, True, True, False, False]
    assert accuracy_at_budget(budgets, acc, 2.0) == pytest.approx(0.3)
    assert np.isnan(accuracy_at_budget(budgets, acc, 32.0))


def test_flops_matched_comparison_uses_the_ledger_multiplier():
    names, acc = _honest_table()
    res = compute_optimal(acc, BUDGETS, names, np.repeat([1, 2], 20), baseline="best_of_n")
    table = flops_matched_comparison(res, 2.0, 0.5, r_values=[22.0, 0.79, 0.16], sample_budget=1.0)
    mult = matched_compute_multiplier(2.0, 22.0)
    row = table.iloc[0]
    assert row.multiplier == pytest.approx(mult) and row.small_model_budget == pytest.approx(mult)
    assert row.small_model_accuracy == pytest.approx(float(accuracy_at_budget(BUDGETS, res.accuracy, mult)))
    assert row.small_minus_large == pytest.approx(row.small_model_accuracy - 0.5)
    assert np.isnan(table.iloc[2].small_model_accuracy)  # R=0.16 needs more budget than was measured
    per_bin = flops_matched_comparison(res, 2.0, [0.6, 0.4], r_values=[22.0], sample_budget=1.0)
    assert per_bin.level.tolist() == [1, 2]
    with pytest.raises(ValueError, match="large_model_accuracy has 3 values for 2 bins"):
        flops_matched_comparison(res, 2.0, [0.1, 0.2, 0.3], sample_budget=1.0)


def test_accuracy_table_from_pool_curves_feeds_compute_optimal():
    rng = np.random.default_rng(0)
    answer = rng.integers(0, 3, size=(20, 16))
    score = rng.random((20, 16))
    pool = pool_from_arrays(answer == 0, answer, {"v": score})
    curves = selection_curves(pool, "v", [1, 2, 4, 8, 16], draws=8, n_boot=0)
    names, acc = accuracy_table(curves, [1, 4, 16])
    assert acc.shape == (3, 3, 20)
    np.testing.assert_allclose(acc[0, 1], curves["majority"].per_question[:, 2])
    res = compute_optimal(acc, [1, 4, 16], names, np.repeat([1, 2], 10), baseline="best_of_n[v]")
    assert res.accuracy.shape == (3,)
    assert np.isnan(accuracy_table(curves, [3])[1]).all()  # 3 is not on the k grid


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(baseline="nope"), "baseline 'nope' is not a configuration; allowed: best_of_n, search"),
        (dict(levels=np.array([1] + [2] * 39)), "bin 1 has fewer than 2 questions"),
        (dict(budgets=BUDGETS[::-1]), "budgets must be 5 positive, strictly increasing values"),
    ],
)
def test_compute_optimal_rejects_bad_input(kwargs, message):
    names, acc = _honest_table()
    args = dict(budgets=BUDGETS, levels=np.repeat([1, 2], 20), baseline="best_of_n") | kwargs
    with pytest.raises(ValueError, match=message):
        compute_optimal(acc, args.pop("budgets"), names, args.pop("levels"), **args)


def test_a_configuration_missing_one_question_of_a_bin_is_no_candidate_there():
    """Picked on the half it covers, it would leave the other half's question unscored and blank the budget."""
    names, acc = _honest_table()
    levels = np.repeat([1, 2], 20)
    fold = fold_assignment(np.unique(levels, return_inverse=True)[1], 0)
    gap = np.flatnonzero((levels == 1) & (fold == 1))[0]
    acc[1, :, gap] = np.nan  # search cannot afford one fold-1 question of bin 1
    res = compute_optimal(acc, BUDGETS, names, levels, baseline="best_of_n")
    assert (res.chosen_names(0)[0] == "best_of_n").all() and (res.chosen_names(1)[0] == "best_of_n").all()
    assert (res.chosen_names(0)[1] == "search").all()
    assert not np.isnan(res.accuracy).any()


def test_budget_to_reach_past_an_unmeasured_budget_is_a_bound_at_the_first_measured_one():
    needed, bound = budget_to_reach(BUDGETS[:3], np.array([np.nan, 0.4, 0.5]), [0.3, 0.45])
    np.testing.assert_allclose(needed, [2.0, np.sqrt(8.0)])
    assert bound.tolist() == [True, False]


def test_no_efficiency_against_a_baseline_that_solves_nothing():
    """Where best-of-N is at accuracy 0 there is nothing to match: no ratio, rather than budget / smallest budget."""
    names, acc = _honest_table()
    levels = np.repeat([1, 2], 20)
    acc[0][:, levels == 2] = 0.0  # best-of-N never solves bin 2
    res = compute_optimal(acc, BUDGETS, names, levels, baseline="best_of_n")
    assert np.isnan(res.efficiency_by_bin[1]).all() and not res.efficiency_by_bin_is_lower_bound[1].any()
    assert np.isfinite(res.efficiency_by_bin[0][1:]).all() and np.isfinite(res.efficiency[1:]).all()


def test_held_out_text_says_what_each_bin_kind_leaves_in():
    """The 2-fold CV holds out the choice only; the bins come from every question (scoring half included)."""
    from backend.metrics.study import held_out_text

    oracle, predicted = held_out_text("oracle"), held_out_text("predicted[prm]")
    for text in (oracle, predicted):
        assert text.startswith("Held out: only the choice of configuration")
        assert "honest" not in text
    assert "pass@1 over all its pool's samples, the scoring half included" in oracle
    assert "mean verifier score over all its pool's samples" in predicted
    assert "no budget is charged for them" in predicted
