"""One rule for comparing answers in a vote: the pools' SQL and the searches' Python agree on it."""

import duckdb
import numpy as np
import pytest

from backend.metrics.pools import pool_from_arrays
from backend.metrics.selection import selection_curves
from backend.strategies.selectors import pick_majority
from backend.strategies.tree import Node
from backend.tasks.base import ANSWER_SQL, normalize_answer

ANSWERS = ["42", " 42 ", "4 2", "4  2", "x\t=\n3", "Paris", "paris", "", "   ", None, "ü  ß"]


@pytest.mark.parametrize("answer", ANSWERS)
def test_the_sql_and_the_python_rule_agree(answer):
    sql = duckdb.execute(f"SELECT {ANSWER_SQL} FROM (SELECT ?::VARCHAR AS answer)", [answer]).fetchone()[0]
    assert sql == normalize_answer(answer)


def test_a_search_and_a_pool_vote_pick_the_same_answer():
    """'London' twice against three spellings of Paris once each: case is kept, so both votes pick London (a search
    that lower-cased answers would have counted three votes for paris and disagreed with the pool)."""
    answers = ["Paris", " London", "paris", "PARIS", "London "]
    correct = np.array([[a.strip() == "London" for a in answers]])
    codes: dict = {}
    answer_id = np.array([[codes.setdefault(normalize_answer(a), len(codes)) for a in answers]])
    pool = pool_from_arrays(correct, answer_id)
    assert selection_curves(pool, None, [5], draws=2, n_boot=0)["majority"].per_question[0, 0] == 1.0
    nodes = [Node(i, None, 1, answer=a, is_final=True) for i, a in enumerate(answers)]
    assert normalize_answer(pick_majority(nodes).answer) == "London"
