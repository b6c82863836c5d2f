"""A checker that raises on one sample (say, a reasoning-gym `score_answer` bug on an odd answer) is recorded on
that sample as a grading error; the run goes on and finishes."""

from backend.config import ModelSpec, parse_spec
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun, _prepare_search
from backend.tasks.base import Grade
from store import Store
from tests.fakes import FAKE_MODEL, FakeTask, ScriptedEngine


class BrittleTask(FakeTask):
    """Grades like FakeTask, but its checker crashes on the answer 13."""

    def grade(self, question, completion):
        if "13" in completion:
            raise KeyError("13")
        return super().grade(question, completion)


def test_a_checker_exception_is_one_samples_grading_error_not_the_runs(tmp_path):
    task = BrittleTask(2)
    engine = ScriptedEngine([(r"What is 0\?", "Answer: 1"), (r"What is 1\?", ["Answer: 13", "Answer: 1"])])
    spec = parse_spec(
        dict(
            name="brittle",
            models=["scripted"],
            task=dict(kind="humaneval"),
            samples_per_question=2,
            max_tokens=16,
            verifiers=["oracle"],
            strategies=[dict(name="best_of_n", config=dict(n=2, max_tokens=16))],
            budgets=[4],
        )
    )
    searches = [_prepare_search(i, s, spec) for i, s in enumerate(spec.strategies)]
    prepared = PreparedRun(
        spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)], searches
    )
    store = Store.open(tmp_path / "store")
    execute(prepared, store, engine_factory=lambda model, engine_spec: engine)
    assert store.get_run(prepared.run_id)["status"] == "done"
    rows = store.query(
        "SELECT question_id, answer, score, correct, grade_error FROM samples ORDER BY question_id, sample_idx"
    )
    bad = rows[rows["grade_error"].notna()]
    assert len(bad) == 1 and bad["grade_error"].iloc[0] == "KeyError: '13'"
    assert bad[["answer", "score", "correct"]].isna().all(axis=None)  # unknown, not "wrong"
    assert rows["grade_error"].isna().sum() == 3 and rows["correct"].fillna(False).sum() == 3
    nodes = store.query("SELECT grade_error FROM nodes WHERE grade_error IS NOT NULL")
    assert len(nodes) >= 1 and (nodes["grade_error"] == "KeyError: '13'").all()
    assert store.query("SELECT count(*) AS n FROM scores")["n"][0] == 4  # the oracle scored the bad one 0, no crash


def test_a_grade_with_an_error_is_never_correct():
    assert not Grade(None, None, "boom").correct and Grade("1", 1.0).correct
