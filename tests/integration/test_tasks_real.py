"""HumanEval and MATH-format suites end to end on the default real model."""

import json

import pytest

from store import Store
from tests.conftest import ttc

pytestmark = pytest.mark.real_model


def test_humaneval_and_math_runs_store_graded_samples(tmp_path, write_spec):
    store = tmp_path / "store"
    he = write_spec(
        "name: he\nmodels: [qwen2.5-coder-0.5b-instruct]\ntask: {kind: humaneval, ids: [HumanEval/2, HumanEval/0], size: 1, timeout_s: 5}\n"
        "samples_per_question: 2\ntemperature: 0.2\nmax_tokens: 200\n",
        "he.yaml",
    )
    math = tmp_path / "m.jsonl"
    math.write_text(
        "\n".join(
            json.dumps(r)
            for r in [{"problem": "What is 3 + 4?", "answer": "7"}, {"problem": "What is 10 - 2?", "answer": "8"}]
        )
    )
    mj = write_spec(
        f"name: mj\nmodels: [qwen2.5-coder-0.5b-instruct]\ntask: {{kind: math_jsonl, path: {math}}}\n"
        "samples_per_question: 2\nmax_tokens: 96\n",
        "mj.yaml",
    )
    for spec in (he, mj):
        proc = ttc("run", str(spec), "--store", str(store), "--quiet")
        assert proc.returncode == 0, proc.stderr[-2000:]
    df = Store.open(store, create=False).query(
        "select task, count(*) n, sum(correct::int) c, count(answer) a from samples group by task order by task"
    )
    rows = {r["task"]: r for r in df.to_dict("records")}  # the suite's kind (its dataset is in samples.dataset)
    assert rows["humaneval"]["n"] == 2 and rows["math_jsonl"]["n"] == 4
    # Easy enough that a real 0.5B model gets some right: the grading path works on real output.
    assert rows["humaneval"]["c"] + rows["math_jsonl"]["c"] >= 2, rows
