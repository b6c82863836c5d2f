"""A spec with verifiers, strategies and budgets: the pool is scored, every strategy runs at every budget, and a
re-run does nothing twice."""

import pytest

from store import Store
from tests.conftest import ttc

pytestmark = pytest.mark.real_model

SPEC = """
name: withsearch
models: [gemma-3-270m]
task:
  kind: reasoning_gym
  datasets: [{name: basic_arithmetic, size: 2, config: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}}]
samples_per_question: 3
max_tokens: 24
verifiers: [self_verify]
strategies:
  - {name: beam_search, config: {n: 4, width: 2, max_rounds: 2, max_tokens: 16}}
  - {name: majority, config: {n: 4, max_tokens: 16}}
budgets: [4, 8]
"""

COUNTS = """select (select count(*) from samples) s, (select count(*) from scores) c,
  (select count(distinct (strategy, config)) from nodes) k, (select count(*) from nodes) n,
  (select count(*) from nodes where selected) sel,
  (select count(*) from scores where score between 0 and 1 and verifier_flops > 0) good_scores"""

# every (search, question) whose stored spend exceeds its budget: the ledger's charge is a hard limit
OVER_BUDGET = """select strategy, json_extract(config, '$.budget_flops')::double budget, question_id,
  sum(generator_flops + verifier_flops) spent from nodes group by all having spent > budget"""


def test_spec_runs_verifiers_and_strategies_once(tmp_path, write_spec):
    spec_file, store = write_spec(SPEC), tmp_path / "store"
    first = ttc("run", str(spec_file), "--store", str(store), "--quiet")
    assert first.returncode == 0, first.stderr[-2000:]
    counts = Store.open(store, create=False).query(COUNTS).to_dict("records")[0]
    # 2 questions x 3 samples, each scored once; 2 strategies x 2 budgets; one pick per question per search
    assert (counts["s"], counts["c"], counts["k"], counts["sel"], counts["good_scores"]) == (6, 6, 4, 8, 6)
    assert Store.open(store, create=False).query(OVER_BUDGET).empty
    again = ttc("run", str(spec_file), "--store", str(store), "--quiet")
    assert again.returncode == 0 and "0 generated now" in again.stdout
    assert Store.open(store, create=False).query(COUNTS).to_dict("records")[0] == counts
