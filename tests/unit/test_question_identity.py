"""A question is one question: two runs of one dataset with other knobs reuse the same ids for different questions
(`basic_arithmetic/0/0` is "-1 / 1" in one and "-1515 / 5 + ..." in the other). Spec → worker (scripted engine) →
store → every analysis: the questions stay apart in the pools, the compute-optimal study, `ttc compute-optimal` and
every analysis page; the pages and the CLI default to a comparable selection and say what they left out."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backend.config import ModelSpec, parse_spec
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun
from backend.metrics.coverage import coverage_curve
from backend.metrics.pools import load_pool
from backend.metrics.study import compute_optimal_study
from backend.tasks import create_task
from store import Store
from tests.fakes import FAKE_MODEL, ScriptedEngine

TWO_TERMS = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def _solve(prompt: str, params) -> str:
    """Right on even seeds (the last 'Calculate ...' of the prompt is the question asked), wrong on odd ones."""
    expr = re.findall(r"Calculate (.*?)\.\s", prompt + " ")[-1]
    value = eval(expr)  # noqa: S307 - reasoning-gym's own arithmetic, in a test
    right = str(int(value)) if float(value).is_integer() else str(value)
    return f"Answer: {right}" if (params.seed or 0) % 2 == 0 else "Answer: 12345"


def _run(store: Store, name: str, size: int, config: dict) -> str:
    spec = parse_spec(
        dict(
            name=name,
            models=["scripted"],
            task=dict(kind="reasoning_gym", datasets=[dict(name="basic_arithmetic", size=size, config=config)]),
            samples_per_question=4,
            max_tokens=16,
        )
    )
    task = create_task(spec.task, seed=spec.seed)
    prepared = PreparedRun(spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)])
    engine = ScriptedEngine([(r"Calculate", _solve)])
    execute(prepared, store, engine_factory=lambda model, options: engine)
    return prepared.run_id


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A 6-question study (two one-digit terms), then a 2-question run of the dataset's default knobs."""
    store = Store.open(tmp_path_factory.mktemp("identity") / "store")
    study = _run(store, "study", 6, TWO_TERMS)
    other = _run(store, "defaults", 2, {})
    return store, study, other


def test_the_two_runs_reuse_ids_for_different_questions(two_runs):
    store, study, other = two_runs
    q = store.query(
        "SELECT run_id, question, question_key FROM questions WHERE question_id = 'basic_arithmetic/0/0' ORDER BY 1"
    ).set_index("run_id")
    assert q.loc[study, "question"] == "Calculate -1 / 1."
    assert q.loc[other, "question"].startswith("Calculate -1515 / 5")
    assert q.loc[study, "question_key"] != q.loc[other, "question_key"]
    # every sample carries its question's key, the one of its run's questions row
    stray = store.query(
        "SELECT count(*) AS n FROM samples s JOIN questions q USING (run_id, question_id) "
        "WHERE s.question_key IS DISTINCT FROM q.question_key"
    )
    assert stray["n"][0] == 0


def test_pools_keep_them_apart_and_a_run_reads_the_same_beside_the_other(two_runs):
    store, study, other = two_runs
    con = store.connect()
    try:
        both = load_pool(con, [study, other], "scripted")
        alone = load_pool(con, study, "scripted")
    finally:
        con.close()
    assert both.n_questions == 8 and alone.n_questions == 6
    assert both.n.tolist() == [4] * 8  # no question got the other run's samples
    clashing = [label for label in both.question_ids if label.startswith("basic_arithmetic/0/0")]
    assert len(clashing) == 2 and all(re.fullmatch(r"basic_arithmetic/0/0 ·[0-9a-f]{6}", c) for c in clashing)
    assert len(set(both.question_ids)) == 8
    assert alone.question_ids.tolist() == [f"basic_arithmetic/0/{j}" for j in range(6)]  # no clash: plain ids
    # the study's questions read the same with the other run selected beside it
    mine = np.isin(both.question_keys, alone.question_keys)
    assert mine.sum() == 6
    k = [1, 2, 4]
    assert np.allclose(
        coverage_curve(both.subset(mine), k, n_boot=0).per_question, coverage_curve(alone, k, n_boot=0).per_question
    )


def test_the_compute_optimal_study_counts_every_question_once(two_runs):
    store, study, other = two_runs
    con = store.connect()
    try:
        s = compute_optimal_study(con, [study, other], "scripted", verifier=None, n_bins=2, draws=4)
    finally:
        con.close()
    assert len(s.table.question_ids) == 8 and len(set(s.table.question_ids)) == 8


def test_ttc_compute_optimal_keeps_them_apart_and_defaults_to_the_newest_study(two_runs, capsys):
    from backend.cli import main

    store, study, other = two_runs
    assert main(["compute-optimal", "--store", str(store.root), "--run", study, "--run", other, "--n-bins", "2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("scripted: 8 questions")
    assert main(["compute-optimal", "--store", str(store.root), "--n-bins", "2"]) == 0
    err = capsys.readouterr().err
    assert f"note: run {study} left out (other questions than {other}); name it with --run to include it" in err
    assert "scripted: 2 questions" in err


def test_a_store_from_before_keys_is_migrated_and_reads_the_same(two_runs, tmp_path):
    """The same two runs as layout 6 wrote them (no question_key anywhere, catalog at m009): opened by this version
    the store is migrated to the current layout, keyed on read from each run's questions, and its pools are those of the
    store written with keys; compaction then writes the keys in."""
    import shutil

    import pyarrow.parquet as pq
    from sqlalchemy import text

    from store.maintenance import compact_run
    from store.schema import SHARD_SCHEMA_VERSION
    from store.store import lacks_values

    store, study, other = two_runs
    old = tmp_path / "old"
    shutil.copytree(store.root, old)
    for path in old.glob("*/*/*.parquet"):
        table = pq.read_table(path)
        newer = [c for c in ("question_key", "trace_confidence") if c in table.column_names]
        if newer:
            pq.write_table(table.drop(newer), path)
    catalog = Store.open(old, create=False).catalog
    with catalog.begin() as db:
        db.execute(
            text(
                "DELETE FROM _migrations WHERE name IN ('m010_question_key', 'm011_token_confidence_range', "
                "'m012_score_pass_tokens', 'm015_trace_confidence')"
            )
        )
        db.execute(text("UPDATE store_meta SET value = '6' WHERE key = 'shard_schema_version'"))
    catalog.dispose()

    migrated = Store.open(old)
    with migrated.catalog.connect() as db:
        assert db.execute(text("SELECT value FROM store_meta WHERE key = 'shard_schema_version'")).scalar() == str(
            SHARD_SCHEMA_VERSION
        )
    keys = "SELECT run_id, question_id, sample_idx, question_key FROM samples ORDER BY ALL"
    assert migrated.query(keys).equals(store.query(keys))
    qkeys = "SELECT run_id, question_id, question_key FROM questions ORDER BY ALL"
    assert migrated.query(qkeys).equals(store.query(qkeys))

    def pool(s):
        con = s.connect()
        try:
            return load_pool(con, [study, other], "scripted")
        finally:
            con.close()

    new, was = pool(store), pool(migrated)
    assert was.question_ids.tolist() == new.question_ids.tolist()
    assert was.question_keys.tolist() == new.question_keys.tolist()
    assert np.array_equal(was.correct, new.correct) and np.array_equal(was.answer_id, new.answer_id)

    compact_run(migrated, study)
    live = migrated.shards("samples")
    assert [lacks_values(str(p), "question_key") for p in live if study in str(p)] == [False]
    assert migrated.query(keys).equals(store.query(keys))


def test_default_selection_leaves_out_unfinished_adaptive_and_other_questions():
    import pandas as pd

    from backend.run_selection import default_runs

    questions = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e", "f"],
            "question_set": ["S", "S", "T", "S", "S", "S"],
        }
    )
    catalog = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e", "f"],
            "status": ["done", "done", "done", "cancelled", "done", "running"],
            "created_at": ["1", "2", "3", "4", "5", "6"],
        }
    )
    d = default_runs(questions, catalog, adaptive=["e"])
    # the newest finished, non-adaptive run is c: its questions (T) are the reference
    assert d.run_ids == ("c",)
    assert dict(d.left_out) == {
        "a": "other questions than c",
        "b": "other questions than c",
        "d": "cancelled",
        "e": "adaptive: not an exchangeable pool, read it on the Run page",
        "f": "partial: still running",
    }
    assert d.caption(["c", "a"]) == (
        "Left out by default, add them under Runs to include them: b (other questions than c), d (cancelled), "
        "e (adaptive: not an exchangeable pool, read it on the Run page), f (partial: still running)."
    )
    assert d.caption(["a"]) == ""  # the default run is not selected: its reasons would explain nothing shown
    catalog.loc[2, "status"] = "failed"  # c failed: b is the newest finished one, a shares its questions
    d = default_runs(questions, catalog, adaptive=["e"])
    assert d.run_ids == ("a", "b") and dict(d.left_out)["c"] == "failed"
    assert default_runs(questions, None, []).run_ids == ("a", "b", "d", "e", "f")  # no catalog: all finished
    assert default_runs(questions.iloc[:0], catalog, []) == type(d)((), ())


def test_default_runs_leave_served_requests_out_with_the_reason():
    import pandas as pd

    from backend.run_selection import default_runs

    # a served run that somehow holds samples of the study's questions, newer than the study: still not a pool
    questions = pd.DataFrame({"run_id": ["study", "srv"], "question_set": ["S", "S"]})
    catalog = pd.DataFrame(
        {"run_id": ["study", "srv"], "status": ["done", "done"], "created_at": ["1", "2"], "name": ["x", "served"]}
    )
    d = default_runs(questions, catalog, [])
    assert d.run_ids == ("study",)
    assert dict(d.left_out) == {"srv": "served requests: read them on the Serving page"}


# ---- the pages ------------------------------------------------------------------------------------------------
ANALYSIS_PAGES = ["coverage", "strategies", "cost_of_pass", "compute_optimal", "samples"]


def _page(monkeypatch, root, page: str, runs=None):
    from streamlit.testing.v1 import AppTest

    from tests.ui.conftest import APP

    monkeypatch.setenv("TTC_STORE", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(f"app_pages/{page}.py")
    if runs:
        at.query_params["runs"] = list(runs)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("page", ANALYSIS_PAGES)
def test_every_analysis_page_keeps_the_questions_apart(monkeypatch, two_runs, page):
    store, study, other = two_runs
    at = _page(monkeypatch, store.root, page, [study, other])
    if page == "samples":
        options = at.selectbox(key="question").options
        assert len(options) == 9 and sum(o.startswith("basic_arithmetic/0/0 ·") for o in options) == 2
        assert options[1].startswith("basic_arithmetic/0/0 ·")
        at.selectbox(key="question").set_value(options[1]).run()
        shown = [c.value for c in at.caption if "sample(s) shown" in c.value]
        assert shown and shown[0].startswith("4 sample(s) shown")  # one question's pool, not both runs' 0/0
        return
    assert sorted(at.multiselect(key="runs").value) == sorted([study, other])
    if page == "coverage":
        fits = [d.value for d in at.dataframe if "questions" in d.value.columns]
        assert fits and fits[0]["questions"].tolist() == [8]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_pages_default_to_the_newest_study_and_say_what_they_left_out(monkeypatch, two_runs):
    store, study, other = two_runs
    at = _page(monkeypatch, store.root, "coverage")
    assert list(at.multiselect(key="runs").value) == [other]
    captions = [c.value for c in at.caption]
    assert (
        f"Left out by default, add them under Runs to include them: {study} (other questions than {other})." in captions
    )
