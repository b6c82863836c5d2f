"""The pool loader against an in-memory DuckDB holding the store's tables (no store module needed)."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from backend.metrics.coverage import coverage_curve
from backend.metrics.pools import list_verifiers, load_pool


def _store():
    con = duckdb.connect()
    rows = []
    # q1: 3 samples in run r1 plus 1 in run r2; q2: 2 samples (ragged); another model that must not leak in.
    # Completions: r1's q1 samples 0 and 2 are one reasoning path, drawn twice; r2's is not stored
    for run, qid, idx, ans, ok, text in [
        ("r1", "q1", 0, " 42 ", True, "6*7 = 42"),
        ("r1", "q1", 1, "41", False, "6*7 = 41"),
        ("r1", "q1", 2, "42", True, "6*7 = 42"),
        ("r2", "q1", 0, None, False, None),
        ("r1", "q2", 0, "x  y", False, "6*7 = 42"),  # another question: another path, whatever the text
        ("r1", "q2", 1, "x y", False, "x y"),
    ]:
        rows.append(
            dict(
                run_id=run,
                model="m",
                dataset="t",
                question_id=qid,
                sample_idx=idx,
                strategy="sample",
                answer=ans,
                completion=text,
                score=1.0 if ok else 0.0,
                correct=ok,
                prompt_tokens=10,
                cached_prompt_tokens=0,
                completion_tokens=5 + idx,
                prefill_flops=100.0,
                decode_flops=50.0,
                flops=75.0,
                logprob_mean=-0.25 * (idx + 1),
                token_confidence=None if run == "r2" else [16 * (idx + 1)] * 3,  # r2: written before layout 5
                question_key=None,  # no key: the question is its (dataset, id), as before layout 7
                trace_confidence=None,  # before layout 10: computed from the token confidences
            )
        )
    rows.append({**rows[0], "model": "other"})
    samples = pd.DataFrame(rows)
    scores = pd.DataFrame(
        [
            dict(run_id="r1", model="m", question_id="q1", sample_idx=0, verifier="prm", score=0.9),
            dict(run_id="r1", model="m", question_id="q1", sample_idx=1, verifier="prm", score=0.2),
            dict(run_id="r1", model="m", question_id="q1", sample_idx=1, verifier="orm", score=0.7),
            dict(run_id="r1", model="m", question_id="q2", sample_idx=0, verifier="prm", score=0.5),
        ]
    )
    con.register("samples_df", samples)
    con.register("scores_df", scores)
    con.execute("CREATE TABLE samples AS SELECT * FROM samples_df")
    con.execute("CREATE TABLE scores AS SELECT * FROM scores_df")
    con.execute("CREATE TABLE allocations (run_id VARCHAR)")  # no adaptive run
    return con


def test_load_pool_builds_dense_arrays_in_one_query():
    con = _store()
    pool = load_pool(con, ["r1", "r2"], "m")
    assert pool.question_ids.tolist() == ["q1", "q2"]
    assert pool.n.tolist() == [4, 2]
    assert pool.valid.tolist() == [[True] * 4, [True, True, False, False]]
    assert pool.correct.tolist() == [[True, False, True, False], [False, False, False, False]]
    # " 42 " and "42" are one answer; whitespace runs collapse; NULL is -1; padding is -1
    assert pool.answer_id.tolist() == [[1, 0, 1, -1], [0, 0, -1, -1]]
    assert sorted(pool.scores) == ["orm", "prm"]
    prm = pool.score("prm")
    assert prm[0, :2].tolist() == [0.9, 0.2] and np.isnan(prm[0, 2]) and np.isnan(prm[1, 1])
    assert pool.completion_tokens[0].tolist() == [5, 6, 7, 5]
    assert pool.flops[1, :2].tolist() == [75.0, 75.0] and np.isnan(pool.flops[1, 2])
    # each sample's own signals in its cell: trace confidence in nats (NaN where not stored), mean logprob
    np.testing.assert_array_equal(pool.confidence[0], [1.0, 2.0, 3.0, np.nan])
    np.testing.assert_array_equal(pool.logprob_mean[0], [-0.25, -0.5, -0.75, -0.25])
    # reasoning paths by completion text within each question (a missing completion is a path of its own), coded
    # densely in an order of no meaning
    path = pool.path_id
    assert path[0, 0] == path[0, 2] and sorted(set(path[0])) == [0, 1, 2] and sorted(path[1, :2]) == [0, 1]
    assert path[1, 2:].tolist() == [-1, -1]


def test_a_pool_loaded_without_confidences_is_the_same_pool_without_them():
    con = _store()
    full, lean = load_pool(con, ["r1", "r2"], "m"), load_pool(con, ["r1", "r2"], "m", confidence=False)
    assert lean.confidence is None and full.confidence is not None
    for name in ("valid", "correct", "answer_id", "completion_tokens", "logprob_mean", "path_id", "question_ids"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)
    assert sorted(lean.scores) == sorted(full.scores)


def test_load_pool_filters_runs_and_verifiers():
    con = _store()
    pool = load_pool(con, "r1", "m", verifiers="orm")
    assert pool.n.tolist() == [3, 2] and list(pool.scores) == ["orm"]
    assert list_verifiers(con, ["r1"], "m") == ["orm", "prm"]
    assert coverage_curve(pool, [1], n_boot=0).mean[0] == pytest.approx((2 / 3 + 0) / 2)


def test_load_pool_with_no_match_names_the_selection():
    con = _store()
    with pytest.raises(ValueError, match=r"no samples match run_ids=\['r9'\], model='m'"):
        load_pool(con, ["r9"], "m")
    with pytest.raises(ValueError, match="run_ids is empty"):
        load_pool(con, [], "m")


def test_a_question_is_its_key_not_its_id():
    """Two runs reuse id q1 for different questions (keys A, B): two questions, labelled apart; one question drawn
    as q2 in one run and q3 in another (key C): one question, its samples pooled under its first label."""
    con = duckdb.connect()
    rows = [
        ("r1", "q1", "A", 0, True),
        ("r1", "q1", "A", 1, True),
        ("r2", "q1", "B", 0, False),
        ("r1", "q2", "C", 0, True),
        ("r2", "q3", "C", 0, False),
    ]
    samples = pd.DataFrame(
        [
            dict(
                run_id=r,
                model="m",
                dataset="t",
                question_id=q,
                question_key=k,
                sample_idx=i,
                strategy="sample",
                answer=str(ok),
                completion=f"{q} {i}",
                correct=ok,
                prompt_tokens=1,
                cached_prompt_tokens=0,
                completion_tokens=1,
                prefill_flops=1.0,
                decode_flops=1.0,
                flops=1.0,
                logprob_mean=-1.0,
                token_confidence=[16],
                trace_confidence=1.0,
            )
            for r, q, k, i, ok in rows
        ]
    )
    con.register("samples_df", samples)
    con.execute("CREATE TABLE samples AS SELECT * FROM samples_df")
    con.execute(
        "CREATE TABLE scores (run_id VARCHAR, model VARCHAR, question_id VARCHAR, sample_idx INTEGER, verifier VARCHAR, score DOUBLE)"
    )
    con.execute("CREATE TABLE allocations (run_id VARCHAR)")
    pool = load_pool(con, ["r1", "r2"], "m")
    assert pool.question_ids.tolist() == ["q1 ·A", "q1 ·B", "q2"]
    assert pool.question_keys.tolist() == ["A", "B", "C"]
    assert pool.n.tolist() == [2, 1, 2] and pool.n_correct.tolist() == [2, 0, 1]
    only_r1 = load_pool(con, ["r1"], "m")
    assert only_r1.question_ids.tolist() == ["q1", "q2"]  # no clash in this selection: plain ids
