"""A small adaptive spec end to end on a real model (llama.cpp, a real worker process, a real store): the run
finishes within its total budget on the ledger, every decision is logged and replays, and the Run page shows the
allocation."""

from __future__ import annotations

import pytest

from backend.config import load_spec
from backend.execution.allocation import logged_rounds, policy_of, question_prompt_tokens, replay, total_flops
from backend.execution.sampling import prepare_run
from backend.pricing import model_token_counter
from store import Store
from tests.conftest import ttc
from tests.unit.test_adaptive_run import log_inputs

pytestmark = pytest.mark.real_model

SPEC = """
name: adaptive-real
models: [gemma-3-270m]
task:
  kind: reasoning_gym
  datasets:
    - {name: basic_arithmetic, size: 3, config: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}}
    - {name: chain_sum, size: 3, config: {min_terms: 3, max_terms: 4, min_digits: 2, max_digits: 2}}
samples_per_question: 8
max_tokens: 24
seed: 5
engine: {kind: llamacpp, n_parallel: 4}
adaptive: {total_budget: 4, per_question: true, first_round: 2, round_samples: 2, hopeless_after: 4}
"""

LEDGER = """SELECT sum(p) + sum(d) AS spent FROM (
    SELECT question_id, max(prefill_flops) AS p, sum(decode_flops) AS d FROM samples GROUP BY 1)"""


def test_an_adaptive_run_keeps_its_budget_logs_its_decisions_and_the_run_page_shows_them(
    tmp_path, write_spec, monkeypatch
):
    spec_file, store_dir = write_spec(SPEC), tmp_path / "store"
    proc = ttc("run", str(spec_file), "--store", str(store_dir), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = Store.open(store_dir, create=False)
    prepared = prepare_run(load_spec(spec_file))
    model = prepared.models[0][1]
    assert store.get_run(prepared.run_id)["status"] == "done"
    # the model's tokenizer counts each prompt as the engine reported it: the total is priced with real token counts
    prompts = question_prompt_tokens(prepared, model, model_token_counter(model))
    stored = store.query("SELECT question_id, max(prompt_tokens) AS p FROM samples GROUP BY 1")
    assert {q: int(p) for q, p in zip(stored["question_id"], stored["p"])} == {
        q: prompts[q] for q in stored["question_id"]
    }
    total = total_flops(prepared, model, prompts)
    assert store.query(LEDGER)["spent"][0] <= total
    log = logged_rounds(store, prepared.run_id, model.name)
    assert float(log.loc[log["round"] == 0, "remaining_flops"].iloc[0]) == total
    n = store.query("SELECT count(*) AS n, count(DISTINCT (question_id, sample_idx)) AS k FROM samples")
    assert int(log["samples"].sum()) == n["n"][0] == n["k"][0]  # every sample decided, each once
    assert set(log.loc[log["round"] == 0, "reason"]) == {"first_round"} and log["round"].max() >= 1
    replayed = [(d.question_id, d.round, d.samples) for d in replay(log_inputs(log), policy_of(prepared.spec))]
    assert replayed == [(r.question_id, r.round, r.samples) for r in log.itertuples()]
    refused = ttc("compute-optimal", "--store", str(store_dir), "--run", prepared.run_id)  # not an exchangeable pool
    assert refused.returncode == 2 and f"run {prepared.run_id} is adaptive" in refused.stderr

    from streamlit.testing.v1 import AppTest

    from tests.ui.conftest import APP

    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert at.selectbox(key="alloc").value == f"{prepared.run_id} · {model.name}"
    assert any(c.proto.spec and "Samples given per question" in c.proto.spec for c in at.get("plotly_chart"))
