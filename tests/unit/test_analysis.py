"""A run's analysis (verifier scores, every search at every budget, a ratio sweep) done by shards of questions, in
any order and with repeats, stores exactly what one pass over every question stores: each score and each tree
once. This is what lets a worker resume a run's analysis and engine replicas share it (backend/execution/fanout.py)."""

import json
import shutil
import threading

import pytest

from backend.config import ModelSpec, parse_spec
from backend.execution.analysis import analyse, questions_left
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun, _prepare_search
from backend.tasks import create_task
from store import Store
from tests.fakes import FAKE_MODEL, ScriptedEngine

PROBLEMS = [dict(id=f"q{i}", problem=f"item {i}: {i}+1", answer=str(i + 1), level=1 + i % 3) for i in range(5)]


def _engine():
    # right on some seeds, wrong on others: selections depend on seeds, not on which question came first
    return ScriptedEngine([(r".", lambda prompt, p: f"Answer: {len(prompt) % 4 + (p.seed or 0) % 3}")])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    path = root / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS))
    spec = parse_spec(
        dict(
            name="by-question",
            models=["scripted"],
            task=dict(kind="math_jsonl", path=str(path)),
            samples_per_question=3,
            max_tokens=16,
            verifiers=["oracle"],
            budgets=[3, 6],
            strategies=[
                dict(name="beam_search", config=dict(n=2, width=2, max_tokens=16, max_rounds=2)),
                dict(name="majority", config=dict(n=3, max_tokens=16)),
                dict(name="sequential_revisions", config=dict(max_tokens=16), ratios=["1:0", "1:1", "0:1"]),
            ],
        )
    )
    task = create_task(spec.task)
    searches = [_prepare_search(i, s, spec) for i, s in enumerate(spec.strategies)]
    prepared = PreparedRun(
        spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)], searches
    )
    whole = Store.open(root / "whole")
    execute(prepared, whole, engine_factory=lambda model, options: _engine())
    return dict(root=root, prepared=prepared, whole=whole)


NODES = """SELECT * EXCLUDE (cached_prompt_tokens) FROM nodes
           ORDER BY strategy, config, question_id, node_id"""
SCORES = "SELECT * FROM scores ORDER BY question_id, sample_idx, verifier"


def test_shards_of_questions_in_any_order_store_what_one_pass_stores(run):
    prepared, whole = run["prepared"], run["whole"]
    run_id = prepared.run_id
    parts = Store.open(run["root"] / "parts")
    for table in ("questions", "samples"):  # the same pool, sampled once
        shutil.copytree(whole.root / table / run_id, parts.root / table / run_id)
    every = [q.question_id for q in prepared.questions]
    assert questions_left(prepared, parts, "scripted") == every
    for shard in (["q3"], ["q0", "q4"], ["q3", "q1"], None):  # q3 twice: the second time finds it done
        analyse(prepared, parts, FAKE_MODEL, _engine(), threading.Event(), shard)
        if shard == ["q0", "q4"]:
            assert questions_left(prepared, parts, "scripted") == ["q1", "q2"]
    assert questions_left(prepared, parts, "scripted") == []
    assert parts.query(NODES).equals(whole.query(NODES))
    assert parts.query(SCORES).equals(whole.query(SCORES))
    # every (search, question) tree once: 3 strategies x 2 budgets, the sweep's 3 ratios each, 5 questions
    trees = parts.query("SELECT count(DISTINCT (strategy, config, question_id)) AS n FROM nodes")["n"][0]
    assert trees == (1 + 1 + 3) * 2 * 5
    assert parts.query(
        "SELECT count(*) AS n FROM nodes GROUP BY strategy, config, question_id, node_id HAVING n > 1"
    ).empty


def test_a_cancelled_analysis_writes_nothing_and_leaves_every_question_to_do(run):
    prepared, whole = run["prepared"], run["whole"]
    parts = Store.open(run["root"] / "cancelled")
    for table in ("questions", "samples"):
        shutil.copytree(whole.root / table / prepared.run_id, parts.root / table / prepared.run_id)
    cancelled = threading.Event()
    cancelled.set()
    analyse(prepared, parts, FAKE_MODEL, _engine(), cancelled)
    assert parts.query("SELECT count(*) AS n FROM nodes")["n"][0] == 0
    assert len(questions_left(prepared, parts, "scripted")) == len(PROBLEMS)
