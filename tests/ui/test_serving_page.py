"""The Serving page (AppTest): its empty state, the requests the scripted engine answered grouped under their policy
version, and a label given on the page moving that answer's accuracy onto the page (and onto nothing else)."""

from __future__ import annotations

import pytest

from app_pages import PAGES as APP_PAGES
from store import Store
from tests.ui.conftest import APP, app_test
from tests.unit.test_serving_log import _ask

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PAGE = "app_pages/serving.py"


def _open(monkeypatch, root):
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture
def served_store(tmp_path):
    from backend.serving.runtime import Runtime
    from tests.unit.test_serving import _backend, _policy

    store = Store.open(tmp_path / "store")
    runtime = Runtime(_policy(), _backend(), store)
    out = [_ask(runtime, "What is 2+2?", 3e7), _ask(runtime, "a hard one", 1e7)]
    return store, runtime, out


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_a_store_without_served_requests_says_how_to_serve(monkeypatch, tmp_path):
    Store.open(tmp_path / "store")  # a store, with nothing in it
    at = _open(monkeypatch, tmp_path / "store")
    assert any("Nothing has been served into this store yet" in i.value for i in at.info)
    assert not at.metric


def test_served_requests_and_a_label_moving_accuracy(monkeypatch, served_store):
    store, runtime, out = served_store
    at = _open(monkeypatch, store.root)
    assert any(runtime.policy.version in c.value for c in at.caption)
    assert _metric(at, "Requests") == "2"
    assert _metric(at, "Labelled answers") == "0 of 2"
    assert any("No answer is labelled yet" in c.value for c in at.caption)
    requests = at.dataframe[-1].value
    assert sorted(requests["question"]) == ["What is 2+2?", "a hard one"]
    assert sorted(requests["flops"]) == pytest.approx(sorted(a.usage.flops for a in out))

    hard = out[1]
    row = requests.reset_index(drop=True).index[requests["run_id"].to_numpy() == hard.run_id][0]
    at.selectbox(key="label_answer").set_value(int(row))
    at.radio(key="label_mark").set_value("incorrect")
    at.button(key="label_save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert _metric(at, "Labelled answers") == "1 of 2"
    acc = at.dataframe[0].value
    c = hard.choices[0]
    assert acc[["bin", "configuration", "labelled", "correct", "accuracy"]].values.tolist() == [
        [c.level, c.cell.configuration, 1, 0, 0.0]
    ]
    assert acc["held_out_accuracy"].tolist() == [c.cell.held_out_accuracy]  # the study's promise, beside it
    from backend.serving import log as served

    drift = served.labelled_accuracy(served.served_log(store))["drift"].tolist()
    warnings = [w.value for w in at.warning if w.value.startswith("Drift:")]
    assert len(warnings) == drift.count(True), (warnings, drift)


@pytest.fixture(scope="module")
def study_and_served(tmp_path_factory, populated_store):
    """The populated study store with two served requests written into it, as `ttc serve --store` of the study does."""
    import shutil

    from backend.serving.runtime import Runtime
    from tests.unit.test_serving import _backend, _policy

    root = tmp_path_factory.mktemp("served") / "store"
    shutil.copytree(populated_store, root)
    runtime = Runtime(_policy(), _backend(), Store.open(root))
    return root, [_ask(runtime, "What is 2+2?", 3e7).run_id, _ask(runtime, "a hard one", 1e7).run_id]


@pytest.mark.parametrize("page", [p.path for p in APP_PAGES if p.analysis])
def test_analysis_pages_leave_served_requests_out_of_their_pools(monkeypatch, study_and_served, page):
    root, served = study_and_served
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if page == "app_pages/samples.py":  # no pool: samples of the store's runs, and every stored search tree
        assert not set(served) & set(at.selectbox(key="run").options)
        trees = at.selectbox(key="tree").options
        assert {r for r in served if any(r in t for t in trees)} == set(served)  # served trees are readable here
        return
    runs = at.multiselect(key="runs")
    assert runs.value and not set(served) & set(runs.value) and not set(served) & set(runs.options)


def test_the_run_page_counts_served_requests_and_leaves_its_run_cards_to_the_studys(monkeypatch, study_and_served):
    root, served = study_and_served
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("2 served request(s)" in c.value for c in at.caption)
    cards = "\n".join(str(p.proto.text) for p in at.get("progress"))
    assert cards and not any(r in cards for r in served)


def test_labelled_answers_far_below_the_promise_show_a_drift_warning(monkeypatch, served_store):
    """13 answers of one cell labelled incorrect: 95% Wilson interval 0 to 0.23, below the promised band (0.25 to
    0.75 in the test policy): the page names the cell and both intervals."""
    from backend.serving import log as served

    store, runtime, out = served_store
    hard = [out[1]] + [_ask(runtime, "a hard one", 1e7, seed=s) for s in range(2, 14)]
    for a in hard:
        served.set_label(store, a.run_id, 0, False)
    cells = {(a.choices[0].level, a.choices[0].cell.configuration, a.choices[0].cell.budget_flops) for a in hard}
    assert len(cells) == 1
    at = _open(monkeypatch, store.root)
    [(level, configuration, _)] = cells
    warnings = [w.value for w in at.warning if w.value.startswith("Drift:")]
    assert len(warnings) == 1, warnings
    assert f"bin {level}, {configuration}" in warnings[0] and "0 of 13 labelled answers correct" in warnings[0]
    assert "band 0.25 to 0.75" in warnings[0]
