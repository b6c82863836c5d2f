"""The one pricing home (backend/pricing.py): a pass, "1 sample" and a `budgets:` entry, each checked against a
per-token sum of the ledger's FLOPs per token, and every consumer asked what they cost: one number."""

import json

import numpy as np
import pytest

from backend.ledger import Ledger, ModelArch, sampling_flops
from backend.pricing import (
    budget_flops,
    budget_preview,
    one_sample_flops,
    pass_flops,
    sample_flops,
    samples_bought,
)

ARCH = ModelArch(n_params=494_032_768, n_layers=24, d_model=896)


def brute(arch, a, b):
    return sum(arch.token_flops(t) for t in range(a + 1, b + 1))


def test_a_pass_is_its_uncached_prompt_plus_its_generated_tokens():
    assert pass_flops(ARCH, 100, 30, 7) == pytest.approx(brute(ARCH, 30, 100) + brute(ARCH, 100, 107), rel=1e-12)
    assert pass_flops(ARCH, 100, 0, 0) == pytest.approx(brute(ARCH, 0, 100), rel=1e-12)


def test_the_ledger_charges_through_the_pricing_home():
    led = Ledger()
    assert led.charge_generation(ARCH, 80, 20, 40) == pass_flops(ARCH, 80, 20, 40)
    assert led.charge_verifier(ARCH, 90, 85, 1) == pass_flops(ARCH, 90, 85, 1)


def test_one_sample_is_the_mean_over_questions_of_prefill_plus_max_tokens_decode():
    prompts = [57, 80, 123]
    expected = np.mean([brute(ARCH, 0, p) + brute(ARCH, p, p + 256) for p in prompts])
    assert one_sample_flops(ARCH, prompts, 256) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(
        sample_flops(ARCH, np.array(prompts), 256),
        [brute(ARCH, 0, p) + brute(ARCH, p, p + 256) for p in prompts],
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="at least one question"):
        one_sample_flops(ARCH, [], 256)


def test_budgets_in_samples_are_multiples_of_one_sample_and_flops_pass_through():
    one = one_sample_flops(ARCH, [60, 70], 100)
    assert budget_flops(ARCH, [1, 2.5], "samples", [60, 70], 100) == pytest.approx([one, 2.5 * one], rel=1e-15)
    assert budget_flops(ARCH, [1e12], "flops", [60, 70], 100) == [1e12]
    with pytest.raises(ValueError, match="allowed: samples, flops"):
        budget_flops(ARCH, [1], "tokens", [60], 100)


def test_samples_bought_is_the_inverse_of_a_pool_of_n():
    for n in [1, 3, 17, 64]:
        budget = sampling_flops(ARCH, 60, 100, n)
        assert samples_bought(ARCH, budget, 60, 100) == n
        assert samples_bought(ARCH, budget - 1, 60, 100) == n - 1
    assert samples_bought(ARCH, 0.0, 60, 100) == 0


def test_a_budget_of_one_sample_buys_one_sample():
    prompts = [50, 90]
    p = budget_preview(ARCH, [one_sample_flops(ARCH, prompts, 64) * k for k in (1, 2, 5)], prompts, 64)
    np.testing.assert_allclose(p.samples, [1, 2, 5], rtol=1e-12)
    # the prompt is read once: k samples' worth of budget buys k samples plus what the k-1 saved prefills pay for
    assert p.whole_samples.tolist() == [int((k * p.one_sample - p.prefill) // p.per_sample) for k in (1, 2, 5)]
    assert p.whole_samples[0] == 1
    assert p.prefill + p.per_sample == pytest.approx(p.one_sample, rel=1e-12)


# ---- every consumer asked what "1 sample" and a `budgets:` entry cost: one number ------------------------------
def test_every_consumer_prices_one_sample_and_a_budget_alike(tmp_path, monkeypatch):
    from backend.config import ModelSpec, parse_spec
    from backend.execution.allocation import question_prompt_tokens, total_flops
    from backend.execution.analysis import _budgets_flops, run_prompt_tokens
    from backend.execution.execute import execute
    from backend.execution.sampling import PreparedRun, _prepare_search
    from backend.metrics.cost import curve_cost_rows
    from backend.metrics.pools import load_pool
    from backend.metrics.selection import selection_curves
    from backend.metrics.study import study_inputs
    from backend.prompting import build_prompt
    from backend.tasks import create_task
    from store import Store
    from tests.fakes import FAKE_MODEL, GEN_ARCH, ScriptedEngine

    problems = [dict(id=f"q{i}", problem="x" * (7 * i + 3) + f" {i}+1", answer=str(i + 1)) for i in range(3)]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in problems))
    data = dict(
        name="one-price",
        models=["scripted"],
        task=dict(kind="math_jsonl", path=str(path)),
        samples_per_question=2,
        max_tokens=16,
        verifiers=["oracle"],
        budgets=[3],
        strategies=[dict(name="majority", config=dict(n=2, max_tokens=16))],
    )
    spec = parse_spec(data)
    task = create_task(spec.task)
    prepared = PreparedRun(
        spec,
        spec.run_id(),
        task,
        task.questions(),
        [(ModelSpec(name="scripted"), FAKE_MODEL)],
        [_prepare_search(0, spec.strategies[0], spec)],
    )
    engine = ScriptedEngine([(r".", "Answer: 1" + " " * 40)])  # every completion runs to max_tokens
    prompts = [len(build_prompt(FAKE_MODEL, task, q)) for q in task.questions()]  # one token per character
    one = np.mean([brute(GEN_ARCH, 0, p) + brute(GEN_ARCH, p, p + 16) for p in prompts])  # by hand
    answers = {}

    # the spec check
    answers["spec"] = spec.budgets_flops(GEN_ARCH, prompts)[0] / 3
    # the adaptive allocator (the same spec with `adaptive:`: 3 samples per question on average)
    adaptive = PreparedRun(
        parse_spec(data | dict(adaptive=dict(total_budget=3, per_question=True, first_round=1))),
        "a",
        task,
        task.questions(),
        prepared.models,
    )
    counted = question_prompt_tokens(adaptive, FAKE_MODEL, engine.count_tokens)
    answers["allocator"] = total_flops(adaptive, FAKE_MODEL, counted) / 3 / len(prompts)
    # the search analysis
    answers["analysis"] = _budgets_flops(prepared, FAKE_MODEL, run_prompt_tokens(prepared, FAKE_MODEL, engine))[0] / 3
    # the Run page's helper: the form's task dict, counted by the model's tokenizer
    form = task_prompt_tokens_for_form(data, engine)
    answers["run page"] = budget_preview(GEN_ARCH, [1.0], form, spec.max_tokens).one_sample
    # the compute-optimal labels: a search run at `budgets: [3]` reads "≈ 3 samples"
    store = Store.open(tmp_path / "s")
    execute(prepared, store, engine_factory=lambda model, options: engine)
    monkeypatch.setattr("backend.models.registry.resolve_model", lambda name, **kw: FAKE_MODEL)
    with store.connect() as con:
        table = study_inputs(con, [prepared.run_id], "scripted", verifier=None).table
        pool = load_pool(con, [prepared.run_id], "scripted", strategy="sample")
    assert table.budget_samples.tolist() == pytest.approx([3.0], rel=1e-12)
    answers["compute-optimal"] = table.one_sample_flops
    # cost-of-pass: the FLOPs of an attempt of k = 1 sample (every completion is max_tokens long)
    curve = selection_curves(pool, None, [1], draws=2, n_boot=0)["majority"]
    answers["cost-of-pass"] = float(curve_cost_rows("scripted", "majority", curve, pool)["flops"].iloc[0])

    for who, value in answers.items():
        assert value == pytest.approx(one, rel=1e-12), who


def task_prompt_tokens_for_form(data, engine):
    from backend.pricing import task_prompt_tokens
    from tests.fakes import FAKE_MODEL

    return task_prompt_tokens(data["task"], data.get("seed", 0), FAKE_MODEL, engine.count_tokens)
