"""`ttc plan` runs its own pilot on the default model through the normal spec/worker path, and plans from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.planning import round_up
from store import Store
from tests.conftest import ttc

pytestmark = pytest.mark.real_model

SPEC = """
name: tiny-study
models: [qwen2.5-coder-0.5b-instruct]
task:
  kind: reasoning_gym
  datasets:
    - {name: basic_arithmetic, size: 6, config: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}}
samples_per_question: 4
max_tokens: 48
seed: 0
engine: {kind: llamacpp, n_parallel: 2}
verifiers: [self_verify]
strategies:
  - {name: beam_search, config: {n: 2, width: 2, max_tokens: 24, max_rounds: 2}}
budgets: [1, 2]
"""


def test_ttc_plan_runs_a_tiny_pilot_on_the_default_model(tmp_path, write_spec):
    spec = write_spec(SPEC)
    pilot = tmp_path / "pilot"
    r = ttc(
        "plan",
        str(spec),
        "--keep-pilot",
        str(pilot),
        "--pilot-questions",
        "2",
        "--pilot-samples",
        "2",
        "--pilot-max-tokens",
        "32",
        "--json",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    plan = json.loads(r.stdout)
    rows = Store.open(pilot, create=False).query("SELECT finish_reason, completion_tokens FROM samples")
    assert len(rows) == 4 and plan["pilot_samples"] == 4 and plan["pilot_max_tokens"] == 32
    assert plan["pilot_questions"] == 2 and 1 <= plan["spec_questions"] <= 6  # distinct sums of the 6 drawn
    cut = rows["finish_reason"] == "length"
    assert plan["truncated_share"] == pytest.approx(cut.mean())
    if (~cut).any():
        assert plan["max_tokens"] == round_up(np.quantile(rows.loc[~cut, "completion_tokens"], 0.95))
    else:
        assert plan["max_tokens"] is None and plan["repilot_max_tokens"] == 64
    assert plan["as_written"]["flops"] > 0 and plan["as_written"]["wall_s"] > 0  # the pilot's measured throughput
    assert plan["as_written"]["samples_per_question"] == 4
    assert plan["as_written"]["questions"] == plan["spec_questions"]
