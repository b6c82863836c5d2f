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
    for _, row in log.iterrows():
        if (row["run_id"], row["choice"]) in marks:
            expected.setdefault((row["bin"], row["configuration"]), []).append(marks[(row["run_id"], row["choice"])])
    acc = served.labelled_accuracy(log)
    got = {(b, c): (n, a) for b, c, n, a in zip(acc["bin"], acc["configuration"], acc["labelled"], acc["accuracy"])}
    assert got == {k: (len(v), sum(v) / len(v)) for k, v in expected.items()}


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
