"""The Serving page's queries (backend/serving/log.py) on requests the scripted engine answered: the log matches what
each response said, totals add up, labels move accuracy and only onto the answers labelled."""

from __future__ import annotations

import pytest

from backend.errors import SpecError
from backend.serving import log as served
from backend.serving.runtime import ChatRequest, Runtime, parse_request
from store import Store
from tests.unit.test_serving import _backend, _policy


def _ask(runtime: Runtime, text: str, budget: float | None, seed: int = 1, n: int = 1):
    body = {"model": "scripted", "messages": [{"role": "user", "content": text}], "seed": seed, "n": n}
    if budget is not None:
        body["ttc_budget_flops"] = budget
    return runtime.answer(parse_request(body, ChatRequest))


@pytest.fixture
def answered(tmp_path):
    store = Store.open(tmp_path / "store")
    runtime = Runtime(_policy(), _backend(), store)
    out = [
        _ask(runtime, "What is 2+2?", 3e7),
        _ask(runtime, "a hard one", 1e7),
        _ask(runtime, "a hard one", None, n=2),
    ]
    return store, runtime, out


def test_an_empty_store_has_an_empty_log(tmp_path):
    store = Store.open(tmp_path / "store")
    log = served.served_log(store)
    assert log.empty and list(log.columns) == served.LOG_COLUMNS
    assert served.totals(log).empty and served.labelled_accuracy(log).empty


def test_the_log_says_what_each_response_said(answered):
    store, runtime, out = answered
    log = served.served_log(store)
    assert len(log) == 4  # one row per choice: 1 + 1 + 2
    for a in out:
        rows = log[log["run_id"] == a.run_id].sort_values("choice")
        assert rows["choice"].tolist() == list(range(len(a.choices)))
        for (_, row), c in zip(rows.iterrows(), a.choices):
            ext = c.extension()
            assert row["policy"] == runtime.policy.version
            assert row["bin"] == ext["bin"] and row["configuration"] == ext["configuration"]["name"]
            assert row["flops"] == pytest.approx(ext["flops"])
            assert row["answer"] == ext["answer"] and c.text.endswith(row["answer_text"])
            assert row["prompt_tokens"] == c.usage.prompt_tokens
            assert row["completion_tokens"] == c.usage.completion_tokens
            assert row["samples"] == c.usage.samples
            assert row["seed"] == c.seed
            assert (row["budget_flops"] == a.budget) if a.budget is not None else pd_isna(row["budget_flops"])
            assert row["correct"] is None
    assert set(log.loc[log["run_id"] == out[1].run_id, "question"]) == {"a hard one"}


def pd_isna(x) -> bool:
    return x is None or x != x


def test_totals_add_up_per_policy(answered):
    store, runtime, out = answered
    log = served.served_log(store)
    t = served.totals(log).iloc[0]
    assert t["policy"] == runtime.policy.version
    assert (t["requests"], t["answers"], t["labelled"]) == (3, 4, 0)
    assert t["flops"] == pytest.approx(sum(a.usage.flops for a in out))
    assert t["prompt_tokens"] == sum(a.usage.prompt_tokens for a in out)
    budgeted = [a for a in out if a.budget is not None]  # the third request gave no budget
    share = sum(a.usage.flops for a in budgeted) / sum(a.budget for a in budgeted)
    assert t["flops_per_budget"] == pytest.approx(share) and 0 < share <= 1


def test_labels_move_accuracy_onto_the_labelled_cell_only(answered):
    store, _, out = answered
    easy, hard = out[0], out[1]
    served.set_label(store, easy.run_id, 0, True)
    served.set_label(store, hard.run_id, 0, False)
    log = served.served_log(store)
    assert log["correct"].notna().sum() == 2  # the other two answers stay unlabelled
    acc = served.labelled_accuracy(log).set_index(["bin", "configuration"])
    e, h = easy.choices[0], hard.choices[0]
    assert acc.loc[(e.level, e.cell.configuration)][["labelled", "correct", "accuracy"]].tolist() == [1, 1, 1.0]
    assert acc.loc[(h.level, h.cell.configuration)][["labelled", "correct", "accuracy"]].tolist() == [1, 0, 0.0]
    assert len(acc) == 2
    # relabelling replaces; None removes
    served.set_label(store, hard.run_id, 0, True)
    acc = served.labelled_accuracy(served.served_log(store)).set_index(["bin", "configuration"])
    assert acc.loc[(h.level, h.cell.configuration), "accuracy"] == 1.0
    served.set_label(store, hard.run_id, 0, None)
    assert served.labelled_accuracy(served.served_log(store))["labelled"].sum() == 1


def test_brute_force_accuracy_matches(answered):
    store, _, out = answered
    marks = {(out[1].run_id, 0): False, (out[2].run_id, 0): True, (out[2].run_id, 1): False}
    for (r, c), k in marks.items():
        served.set_label(store, r, c, k)
    log = served.served_log(store)
    expected: dict[tuple, list[bool]] = {}
    promise: dict[tuple, tuple] = {}
    for _, row in log.iterrows():
        if (row["run_id"], row["choice"]) in marks:
            key = (row["bin"], row["configuration"], row["cell_budget_flops"])
            expected.setdefault(key, []).append(marks[(row["run_id"], row["choice"])])
            promise[key] = (row["held_out_accuracy"], row["promise_low"], row["promise_high"])
    acc = served.labelled_accuracy(log)
    keys = zip(acc["bin"], acc["configuration"], acc["cell_budget_flops"])
    got = {k: (n, a) for k, n, a in zip(keys, acc["labelled"], acc["accuracy"])}
    assert got == {k: (len(v), sum(v) / len(v)) for k, v in expected.items()}
    for _, row in acc.iterrows():  # the promise is the cell's, as the policy file holds it
        key = (row["bin"], row["configuration"], row["cell_budget_flops"])
        assert (row["held_out_accuracy"], row["promise_low"], row["promise_high"]) == promise[key]
        assert promise[key][0] is not None and row["drift"] in (True, False)


def test_the_promise_is_the_policy_cell_s_held_out_accuracy_and_band(answered):
    store, runtime, out = answered
    log = served.served_log(store)
    for a in out:
        for c in a.choices:
            row = log[(log["run_id"] == a.run_id) & (log["choice"] == c.index)].iloc[0]
            assert row["held_out_accuracy"] == c.cell.held_out_accuracy
            band = (row["promise_low"], row["promise_high"])
            assert band == (tuple(c.cell.interval) if c.cell.interval else (None, None)) or all(b != b for b in band)


@pytest.mark.parametrize("n", [1, 2, 5, 12, 40])
def test_wilson_interval_matches_scipy(n):
    from scipy.stats import binomtest

    k = list(range(n + 1))
    low, high = served.wilson_interval(k, [n] * len(k))
    for i, ki in enumerate(k):
        ref = binomtest(ki, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low[i], high[i]) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_drift_is_flagged_when_the_labelled_interval_leaves_the_promise_s_band():
    """Brute force from the definition: drift iff the labelled Wilson interval and the promised band are disjoint;
    a cell without a band is compared with its point promise; a cell without a promise has no drift value."""
    import pandas as pd

    rows = []
    cells = [  # (configuration, promise, band, labels)
        ("agrees", 0.6, (0.4, 0.8), [True] * 3 + [False] * 2),
        ("worse", 0.9, (0.8, 1.0), [False] * 10),
        ("better", 0.1, (0.0, 0.2), [True] * 10),
        ("point", 0.5, None, [True] * 10),
        ("none", None, None, [True, False]),
    ]
    for name, held, band, labels in cells:
        for i, correct in enumerate(labels):
            rows.append(
                {"run_id": f"{name}{i}", "choice": 0, "policy": "v", "bin": 1, "configuration": name,
                 "cell_budget_flops": 1e9, "held_out_accuracy": held, "promise_low": band[0] if band else None,
                 "promise_high": band[1] if band else None, "correct": correct}
            )  # fmt: skip
    acc = served.labelled_accuracy(pd.DataFrame(rows)).set_index("configuration")
    for name, held, band, labels in cells:
        lo, hi = served.wilson_interval([sum(labels)], [len(labels)])
        if held is None:
            assert acc.loc[name, "drift"] is None
            continue
        b_lo, b_hi = band if band else (held, held)
        assert acc.loc[name, "drift"] == bool(hi[0] < b_lo or lo[0] > b_hi), name
    assert acc["drift"].to_dict() == {"agrees": False, "worse": True, "better": True, "point": True, "none": None}


def test_labels_refuse_what_was_not_served_and_write_nothing(answered, tmp_path):
    store, _, out = answered
    with pytest.raises(SpecError, match="run_id: 'nope' is not a served request"):
        served.set_label(store, "nope", 0, True)
    with pytest.raises(SpecError, match="choice: 1 is not one of this request's choices; allowed: 0 to 0"):
        served.set_label(store, out[0].run_id, 1, True)
    assert served.labels(store).empty


def test_labels_written_through_the_dashboards_read_handle(answered):
    store, _, out = answered
    reader = Store.open(store.root, create=False)  # as the dashboard opens it
    served.set_label(reader, out[0].run_id, 0, True)
    assert served.served_log(reader)["correct"].notna().sum() == 1
