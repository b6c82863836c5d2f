import warnings

import numpy as np
import pandas as pd
import pytest

from backend.metrics.cost import (
    HUMAN_EXPERT,
    Price,
    attempt_cost,
    cost_of_pass,
    cost_table,
    counterfactual_frontier,
    curve_cost_rows,
    frontier,
    model_gain,
)
from backend.metrics.coverage import coverage_curve
from backend.metrics.pools import pool_from_arrays

PRICES = {"small": Price(0.1, 0.4), "big": Price(2.0, 8.0), "reasoner": Price(1.0, 4.0)}


def _rows():
    return pd.DataFrame(
        [
            dict(
                task="math",
                model="small",
                strategy="bon",
                budget=1,
                input_tokens=1000,
                output_tokens=500,
                success_rate=0.2,
            ),
            dict(
                task="math",
                model="small",
                strategy="bon",
                budget=8,
                input_tokens=8000,
                output_tokens=4000,
                success_rate=0.6,
            ),
            dict(
                task="math",
                model="big",
                strategy="bon",
                budget=1,
                input_tokens=1000,
                output_tokens=500,
                success_rate=0.7,
            ),
            dict(
                task="code",
                model="small",
                strategy="bon",
                budget=1,
                input_tokens=1000,
                output_tokens=500,
                success_rate=0.0,
            ),
            dict(
                task="code",
                model="big",
                strategy="bon",
                budget=1,
                input_tokens=1000,
                output_tokens=500,
                success_rate=0.0,
            ),
            dict(
                task="code",
                model="reasoner",
                strategy="bon",
                budget=1,
                input_tokens=1000,
                output_tokens=5000,
                success_rate=0.5,
            ),
        ]
    )


def test_cost_of_pass_is_cost_over_success_rate_and_infinite_at_zero_success():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warning may leak
        v = cost_of_pass([1.0, 2.0, 0.0], [0.5, 0.0, 0.0])
    assert v[0] == 2.0 and np.isinf(v[1]) and np.isinf(v[2])
    assert attempt_cost(1_000_000, 500_000, Price(1.0, 4.0)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"success_rate must lie in \[0, 1\]"):
        cost_of_pass(1.0, 1.5)


def test_zero_success_everywhere_gives_an_infinite_frontier_not_a_crash():
    table = cost_table(_rows(), PRICES)
    only_failures = table[(table.task == "code") & (table.model != "reasoner")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = frontier(only_failures, by=["task"])
    assert np.isinf(f.frontier_cost.iloc[0]) and f.model.iloc[0] is None


def test_single_model_frontier_is_its_cheapest_strategy_and_budget():
    table = cost_table(_rows(), PRICES)
    small_math = table[(table.model == "small") & (table.task == "math")]
    f = frontier(small_math)
    c1 = (1000 * 0.1 + 500 * 0.4) / 1e6
    assert f.frontier_cost.iloc[0] == pytest.approx(min(c1 / 0.2, 8 * c1 / 0.6))
    assert (f.model.iloc[0], f.budget.iloc[0]) == ("small", 1)


def test_frontier_across_models_gain_and_counterfactual():
    table = cost_table(_rows(), PRICES)
    f = frontier(table, by=["task"]).set_index("task")
    assert f.loc["math", "model"] == "small"  # 0.0015 per pass beats big's 0.00857
    assert f.loc["code", "model"] == "reasoner"
    gain = model_gain(table, "reasoner", by=["task"]).set_index("task")
    assert np.isinf(gain.loc["code", "gain"])  # nothing else ever passes code
    assert gain.loc["math", "gain"] == 0.0  # reasoner has no math rows: adds nothing
    gain_small = model_gain(table, "small", by=["task"]).set_index("task")
    assert gain_small.loc["math", "gain"] == pytest.approx(
        f.loc["math", "frontier_cost"] * 0 + (2000 + 4000) / 1e6 / 0.7 - f.loc["math", "frontier_cost"]
    )
    classes = {"small": "open", "big": "open", "reasoner": "reasoning"}
    cf = counterfactual_frontier(table, classes, "reasoning", by=["task"]).set_index("task")
    assert np.isinf(cf.loc["code", "frontier_cost"]) and cf.loc["math", "model"] == "small"
    with pytest.raises(ValueError, match="remove_class 'closed' is unknown; allowed: open, reasoning"):
        counterfactual_frontier(table, classes, "closed")


def test_human_expert_baseline_caps_the_frontier():
    table = cost_table(_rows(), PRICES)
    f = frontier(table, by=["task"], human_expert_cost=0.004).set_index("task")
    assert f.loc["math", "model"] == "small"  # cheaper than the expert
    reasoner_v = (1000 * 1.0 + 5000 * 4.0) / 1e6 / 0.5
    assert reasoner_v > 0.004
    assert f.loc["code", "model"] == HUMAN_EXPERT and f.loc["code", "frontier_cost"] == 0.004
    # with only failing models, the expert is the whole frontier
    fails = table[(table.task == "code") & (table.model != "reasoner")]
    assert frontier(fails, human_expert_cost=25.0).frontier_cost.iloc[0] == 25.0
    # and the gain of a model is measured against the expert too
    gain = model_gain(table, "reasoner", by=["task"], human_expert_cost=0.004).set_index("task")
    assert gain.loc["code", "gain"] == 0.0


def test_cost_table_names_missing_prices_and_columns():
    with pytest.raises(ValueError, match="no price for model\\(s\\) big, reasoner; priced: small"):
        cost_table(_rows(), {"small": PRICES["small"]})
    with pytest.raises(ValueError, match="lack column\\(s\\) success_rate"):
        cost_table(_rows().drop(columns="success_rate"), PRICES)


def test_curve_cost_rows_bill_the_prompt_once_and_cached_after():
    correct = np.array([[True, False], [False, False]])
    pool = pool_from_arrays(correct, prompt_tokens=np.full((2, 2), 100.0), completion_tokens=np.full((2, 2), 50.0))
    pool.cached_prompt_tokens[:] = 37  # the engine's cache report: it changes nothing
    rows = curve_cost_rows("small", "coverage", coverage_curve(pool, [1, 2], n_boot=0), pool)
    assert rows.input_tokens.tolist() == [100.0, 100.0] and rows.cached_input_tokens.tolist() == [0.0, 100.0]
    assert rows.output_tokens.tolist() == [50.0, 100.0]
    table = cost_table(rows, PRICES)  # no cached-input price: billed at the input price
    assert table.cost_of_pass.iloc[0] == pytest.approx((100 * 0.1 + 50 * 0.4) / 1e6 / 0.25)
    assert table.cost.iloc[1] == pytest.approx((200 * 0.1 + 100 * 0.4) / 1e6)
    discounted = cost_table(rows, {"small": Price(0.1, 0.4, cached_input_per_million=0.025)})
    assert discounted.cost.iloc[1] == pytest.approx((100 * 0.1 + 100 * 0.025 + 100 * 0.4) / 1e6)
    with pytest.raises(ValueError, match="finite and >= 0"):
        Price(0.1, 0.4, cached_input_per_million=-1.0)


def test_frontier_per_budget_names_each_column_once():
    table = cost_table(_rows(), PRICES)
    f = frontier(table[table.task == "math"], by=["budget"])
    assert list(f.columns) == ["budget", "frontier_cost", "model", "strategy"]
    assert f.set_index("budget").model.to_dict() == {1: "small", 8: "small"}  # small is cheaper per pass at both
