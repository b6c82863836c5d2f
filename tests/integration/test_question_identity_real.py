"""Two runs of one dataset with other knobs, on a real model through the real `ttc run` (llama.cpp, a real
store): the same ids name different questions, every stored sample carries its question's key, and
`ttc compute-optimal` keeps the questions apart — and pools the one question both runs drew — and by default
analyses the newest run's questions only."""

from __future__ import annotations

import pytest

from backend.config import load_spec
from backend.execution.sampling import prepare_run
from store import Store
from tests.conftest import ttc

pytestmark = pytest.mark.real_model

SPEC = """
name: {name}
models: [gemma-3-270m]
task:
  kind: reasoning_gym
  datasets:
    - {{name: basic_arithmetic, size: 3, config: {config}}}
samples_per_question: 2
max_tokens: 12
engine: {{kind: llamacpp, n_parallel: 2}}
"""


def test_two_runs_of_one_dataset_with_other_knobs_stay_apart(tmp_path, write_spec):
    store_dir = tmp_path / "store"
    runs = []
    for name, config in [("knobs", "{min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}"), ("defaults", "{}")]:
        spec_file = write_spec(SPEC.format(name=name, config=config), f"{name}.yaml")
        proc = ttc("run", str(spec_file), "--store", str(store_dir), "--quiet")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(prepare_run(load_spec(spec_file)))
    store = Store.open(store_dir, create=False)
    for prepared in runs:  # the keys stored are the questions' own
        stored = store.query(
            "SELECT DISTINCT question_id, question_key FROM samples WHERE run_id = ?", [prepared.run_id]
        )
        assert dict(zip(stored["question_id"], stored["question_key"])) == {
            q.question_id: q.key for q in prepared.questions
        }
    assert runs[0].questions[0].question_id == runs[1].questions[0].question_id
    assert runs[0].questions[0].key != runs[1].questions[0].key

    both = ttc("compute-optimal", "--store", str(store_dir), "--run", runs[0].run_id, "--run", runs[1].run_id)
    assert both.returncode == 0, both.stderr[-2000:]
    # 0/0 and 0/1 differ; 0/2 is "Calculate 2 - -1." in both runs: one question, its samples pooled
    distinct = {q.key for r in runs for q in r.questions}
    assert len(distinct) == 5
    assert both.stderr.startswith("gemma-3-270m: 5 questions")
    default = ttc("compute-optimal", "--store", str(store_dir))
    assert default.returncode == 0, default.stderr[-2000:]
    assert f"note: run {runs[0].run_id} left out (other questions than {runs[1].run_id})" in default.stderr
    assert "gemma-3-270m: 3 questions" in default.stderr
