"""`ttc plan`: its questions-needed figure against a brute-force power simulation of the product's paired tests,
and its recommendations on planted pilot stores."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pyarrow as pa
import pytest

from backend.config import parse_spec
from backend.errors import SpecError, StoreError
from backend.metrics.paired import ALPHA, POWER, mcnemar_exact, questions_needed, sign_flip_test
from backend.planning import TRUNCATION_THRESHOLD, pilot_spec, plan, round_up
from backend.pricing import pool_flops
from bench.synthetic_store import SYNTHETIC_ARCHS
from store import Store
from store.keys import question_key
from store.schema import QUESTIONS, SAMPLES, SCORES

MODEL = "qwen2.5-coder-0.5b-instruct"
ARCH = SYNTHETIC_ARCHS[MODEL]


# ---- (a) questions needed against a simulated power -----------------------------------------------------------
def _smallest_n_with_power(power_at, lo: int, hi: int) -> int:
    """Bisection for the smallest n with power_at(n) >= POWER (power rises with n, up to simulation noise)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if power_at(mid) >= POWER:
            hi = mid
        else:
            lo = mid + 1
    return lo


def test_questions_needed_matches_simulated_power_of_mcnemar_on_0_1_outcomes():
    """A paired population of 0/1 outcomes: A alone solves 30 % of questions, B alone 10 %. Studies of n questions
    drawn from it, each tested with the product's McNemar exact test: the n reaching power 0.8 is within 15 % of
    questions_needed (the plain z-test's n, which ignores that the null spread is the discordant share, is 15.5 %
    short here)."""
    p_a, p_b = 0.3, 0.1
    d = np.repeat([1.0, -1.0, 0.0], [300, 100, 600])  # the population's per-question differences
    predicted = questions_needed(d)
    rng = np.random.default_rng(0)
    studies = 4000
    p_value = cache(lambda a, b: mcnemar_exact(a, b))

    def power_at(n: int) -> float:
        counts = rng.multinomial(n, [p_a, p_b, 1 - p_a - p_b], size=studies)
        return float(np.mean([p_value(int(a), int(b)) < ALPHA for a, b, _ in counts]))

    simulated = _smallest_n_with_power(power_at, 10, 400)
    assert abs(predicted - simulated) <= 0.15 * simulated, (predicted, simulated)


def test_questions_needed_matches_simulated_power_of_the_sign_flip_test_on_expected_accuracies():
    """Expected accuracies in [0, 1] (a pool rule's): A is B plus a noisy +0.08. Studies tested with the
    product's sign-flip permutation test: the n reaching power 0.8 is within 15 % of questions_needed."""
    rng = np.random.default_rng(1)
    base = rng.beta(1.2, 1.2, 20_000)
    d = np.clip(base + rng.normal(0.08, 0.15, base.size), 0, 1) - base
    predicted = questions_needed(d)
    studies = 1500

    def power_at(n: int) -> float:
        draws = d[rng.integers(0, d.size, size=(studies, n))]
        return float(np.mean([sign_flip_test(x, n_perm=999, seed=i)[0] < ALPHA for i, x in enumerate(draws)]))

    simulated = _smallest_n_with_power(power_at, 8, 120)
    assert abs(predicted - simulated) <= 0.15 * simulated, (predicted, simulated)


# ---- (b) recommendations on planted pilot stores ----------------------------------------------------------------
def _spec(**over):
    data = {
        "name": "study",
        "models": [MODEL],
        "task": {
            "kind": "reasoning_gym",
            "datasets": [
                {"name": "basic_arithmetic", "size": 10, "level": 1},
                {"name": "basic_arithmetic", "size": 10, "level": 2, "config": {"min_digits": 2, "max_digits": 2}},
            ],
        },
        "samples_per_question": 8,
        "max_tokens": 96,
        "verifiers": ["self_verify"],
        "strategies": [{"name": "beam_search", "config": {"n": 4, "width": 2}}],
        "budgets": [1, 2, 4],
    }
    data.update(over)
    return parse_spec(data, "test")


def _pilot_store(root, correct, lengths, cap=96, scores=None, span_s=10.0, levels=None):
    """One done pilot run: correct and lengths are (Q, N); a sample at the cap stopped at max_tokens; its samples
    end evenly over `span_s` seconds, each taking 1 s."""
    correct, lengths = np.asarray(correct, bool), np.asarray(lengths, np.int32)
    q, n = correct.shape
    store = Store.open(root)
    run_id = "pilot-0001"
    spec = _spec(max_tokens=cap, samples_per_question=n, strategies=[], budgets=[]).model_dump(mode="json")
    store.upsert_run(run_id, "pilot", spec, q * n, "running")
    levels = np.ones(q) if levels is None else np.asarray(levels, float)
    texts = [f"Calculate {i} + {i}" for i in range(q)]
    keys = [question_key("reasoning_gym", "basic_arithmetic", t, str(2 * i)) for i, t in enumerate(texts)]
    qids = [f"basic_arithmetic/{i}" for i in range(q)]
    store.write_shard(
        "questions",
        run_id,
        pa.table(
            {
                "run_id": [run_id] * q,
                "task": ["reasoning_gym"] * q,
                "question_id": qids,
                "dataset": ["basic_arithmetic"] * q,
                "question": texts,
                "reference": [str(2 * i) for i in range(q)],
                "difficulty": ["{}"] * q,
                "level": levels,
                "question_key": keys,
            },
            schema=QUESTIONS,
        ),
    )
    rows = q * n
    qi = np.repeat(np.arange(q), n)
    pt = np.full(rows, 50, np.int32)
    ct = lengths.ravel()
    from backend.ledger import decode_flops, prefill_flops

    pre, dec = prefill_flops(ARCH, pt), decode_flops(ARCH, pt, ct)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ends = [t0 + timedelta(seconds=1 + (span_s - 1) * i / max(1, rows - 1)) for i in range(rows)]
    answers = np.where(correct.ravel(), np.asarray([str(2 * i) for i in qi]), "wrong")
    table = {
        "run_id": [run_id] * rows,
        "model": [MODEL] * rows,
        "task": ["reasoning_gym"] * rows,
        "question_id": np.asarray(qids)[qi].tolist(),
        "sample_idx": np.tile(np.arange(n, dtype=np.int32), q),
        "strategy": ["sample"] * rows,
        "completion": [f"Answer: {a}" for a in answers],
        "answer": answers.tolist(),
        "score": correct.ravel().astype(float),
        "correct": correct.ravel(),
        "prompt_tokens": pt,
        "completion_tokens": ct,
        "finish_reason": np.where(ct >= cap, "length", "stop").tolist(),
        "latency_s": np.ones(rows),
        "prefill_flops": pre,
        "decode_flops": dec,
        "flops": dec + pre / n,
        "created_at": ends,
        "dataset": ["basic_arithmetic"] * rows,
        "question_key": np.asarray(keys)[qi].tolist(),
    }
    store.write_shard(
        "samples",
        run_id,
        pa.table({f.name: table.get(f.name, pa.nulls(rows, f.type)) for f in SAMPLES}, schema=SAMPLES),
    )
    if scores is not None:
        s = {
            "run_id": [run_id] * rows,
            "model": [MODEL] * rows,
            "question_id": table["question_id"],
            "sample_idx": table["sample_idx"],
            "verifier": ["self_verify"] * rows,
            "score": np.asarray(scores, float).ravel(),
            "verifier_flops": np.full(rows, 1e9),
            "verifier_prompt_tokens": np.full(rows, 80, np.int32),
            "verifier_cached_tokens": np.zeros(rows, np.int32),
            "verifier_completion_tokens": np.ones(rows, np.int32),
        }
        store.write_shard(
            "scores", run_id, pa.table({f.name: s.get(f.name, pa.nulls(rows, f.type)) for f in SCORES}, schema=SCORES)
        )
    store.finish_run(run_id, "done")
    return store


def _mixed(q=12, n=6, seed=0):
    """Questions of graded pass@1, a verifier that mostly ranks correct samples first."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0.1, 0.9, q)
    correct = rng.random((q, n)) < p[:, None]
    scores = np.where(correct, rng.uniform(0.5, 1.0, (q, n)), rng.uniform(0.0, 0.7, (q, n)))
    lengths = rng.integers(20, 70, (q, n))
    return correct, lengths, scores


def test_max_tokens_is_the_rounded_95th_percentile_of_finished_completions(tmp_path):
    correct, lengths, scores = _mixed()
    lengths[0, 0] = 96  # one cut sample of 72: under the threshold
    store = _pilot_store(tmp_path, correct, lengths, scores=scores)
    p = plan(_spec(), store, arch=ARCH)
    finished = lengths[lengths < 96]
    assert p.finished_quantile_tokens == pytest.approx(np.quantile(finished, 0.95))
    assert p.max_tokens == round_up(np.quantile(finished, 0.95)) and p.max_tokens % 16 == 0
    assert p.truncated_share == pytest.approx(1 / lengths.size) and not p.max_tokens_is_lower_bound
    assert p.repilot_max_tokens is None


def test_a_censored_pilot_makes_max_tokens_a_lower_bound_and_asks_for_a_re_pilot(tmp_path):
    correct, lengths, scores = _mixed()
    lengths = np.minimum(lengths, 60)
    lengths[:, :3] = 64  # half the samples cut at the pilot's cap of 64
    store = _pilot_store(tmp_path, correct, lengths, cap=64, scores=scores)
    p = plan(_spec(), store, arch=ARCH)
    assert p.truncated_share == pytest.approx(0.5) and p.truncated_share > TRUNCATION_THRESHOLD
    assert p.max_tokens_is_lower_bound and p.repilot_max_tokens == 128
    assert "LOWER BOUND" in p.text() and "re-pilot at 128" in p.text()


def test_questions_needed_is_the_paired_figure_of_the_two_leading_configurations(tmp_path):
    correct, lengths, scores = _mixed()
    store = _pilot_store(tmp_path, correct, lengths, scores=scores)
    p = plan(_spec(), store, arch=ARCH)
    assert [round(x.budget_samples, 6) for x in p.leading] == [1.0, 2.0, 4.0][-len(p.leading) :]
    top = p.leading[-1]
    assert top.accuracy_a >= top.accuracy_b and top.a != top.b
    assert p.questions_needed == top.questions_needed
    # the same figure from the study table the compute-optimal page reads, recomputed here
    from backend.metrics.study import study_inputs

    con = store.connect()
    try:
        table = study_inputs(con, p.pilot_runs, MODEL, n_bins=1, budgets=[top.budget_flops]).table
    finally:
        con.close()
    acc = table.accuracy[:, 0, :]
    full = ~np.isnan(acc).any(axis=1)
    means = np.where(full, np.nan_to_num(acc).mean(axis=1), -np.inf)
    order = np.argsort(-means, kind="stable")
    i = order[0]
    j = next(c for c in order[1:] if full[c] and not np.allclose(acc[c], acc[i]))  # the best that differs
    assert (table.configurations[i], table.configurations[j]) == (top.a, top.b)
    assert top.difference != 0
    assert top.questions_needed == questions_needed(acc[i] - acc[j])


def test_samples_per_question_is_twice_what_the_largest_budget_buys(tmp_path):
    from backend.pricing import samples_bought

    correct, lengths, scores = _mixed()
    store = _pilot_store(tmp_path, correct, lengths, scores=scores)
    p = plan(_spec(), store, arch=ARCH)
    top = p.leading[-1].budget_flops
    k = int(samples_bought(ARCH, top, 50.0, float(lengths.mean())))
    assert p.samples_per_question == 2 * k >= 8  # 4 samples' budget at 96 tokens buys more of the shorter ones


@pytest.mark.parametrize(("solved", "verdict"), [(True, "too easy"), (False, "too hard")])
def test_a_saturated_question_set_is_called_out(tmp_path, solved, verdict):
    q, n = 10, 4
    correct = np.full((q, n), solved)
    correct[0, 0] = not solved  # one sample off: still 9 of 10 questions saturated
    store = _pilot_store(tmp_path, correct, np.full((q, n), 30), scores=np.where(correct, 0.9, 0.1))
    p = plan(_spec(), store, arch=ARCH)
    assert p.separability.startswith(verdict)
    assert [g.verdict for g in p.groups] == [verdict]


def test_cost_is_priced_by_the_pricing_module_and_timed_by_the_pilot_throughput(tmp_path):
    correct, lengths, scores = _mixed()
    store = _pilot_store(tmp_path, correct, lengths, scores=scores, span_s=20.0)
    spec = _spec(budgets=[], strategies=[])
    p = plan(spec, store, arch=ARCH)
    n = lengths.size
    pre = np.asarray(pool_flops(ARCH, 50.0, 0.0, 0))
    flops_pilot = float(pre / lengths.shape[1] * n + (pool_flops(ARCH, 50.0, lengths.ravel(), 1) - pre).sum())
    assert p.pilot_flops_per_s == pytest.approx(flops_pilot / 20.0)
    c = p.as_written
    expected = c.questions * (float(pool_flops(ARCH, 50.0, lengths.mean(), 8)) + 8 * 1e9)
    assert (c.questions, c.samples_per_question, c.max_tokens) == (p.spec_questions, 8, 96)
    assert c.flops == pytest.approx(expected)
    assert c.wall_s == pytest.approx(c.flops / p.pilot_flops_per_s)


def test_the_plan_prints_and_serialises(tmp_path):
    correct, lengths, scores = _mixed()
    p = plan(_spec(), _pilot_store(tmp_path, correct, lengths, scores=scores), arch=ARCH)
    text = p.text()
    for line in ("max_tokens: ", "samples per question: ", "questions needed: ", "question set: ", "cost as written"):
        assert line in text
    data = json.loads(p.to_json())
    assert data["questions_needed"] == p.questions_needed and data["as_recommended"]["flops"] > 0


def test_pilot_spec_cuts_the_study_down(tmp_path):
    spec = _spec(models=[MODEL, "gemma-3-270m"])
    pilot = pilot_spec(spec, questions=2, samples=3, max_tokens=128)
    assert [d.size for d in pilot.task.datasets] == [2, 2]
    assert (pilot.samples_per_question, pilot.max_tokens, pilot.strategies, pilot.budgets) == (3, 128, [], [])
    assert [m.name for m in pilot.model_specs()] == [MODEL] and pilot.verifier_names() == ["self_verify"]
    with pytest.raises(SpecError, match=r"^--pilot-samples: 0; allowed: a whole number, at least 1$"):
        pilot_spec(spec, samples=0)


def test_a_store_without_a_pilot_of_this_task_and_model_is_refused(tmp_path):
    correct, lengths, scores = _mixed()
    store = _pilot_store(tmp_path, correct, lengths, scores=scores)
    other = _spec(models=["gemma-3-270m"])
    with pytest.raises(StoreError, match=r"^--pilot-store: .* holds no finished, non-adaptive reasoning_gym run of "):
        plan(other, store, arch=ARCH)


def test_round_up_is_to_a_multiple_of_16():
    assert [round_up(x) for x in (0, 1, 16, 16.5, 95)] == [16, 16, 16, 32, 96]
    assert math.isclose(round_up(200), 208)


# ---- (c) the command --------------------------------------------------------------------------------------------
def test_ttc_plan_prints_the_example_studys_plan_from_a_pilot_store(tmp_path):
    from tests.conftest import ttc

    correct, lengths, scores = _mixed()
    _pilot_store(tmp_path / "pilot", correct, lengths, scores=scores)
    out = ttc("plan", "examples/compute_optimal.yaml", "--pilot-store", str(tmp_path / "pilot"), check=True).stdout
    assert out.startswith(f"plan for compute_optimal.yaml on {MODEL}\npilot: 12 questions, 72 samples at max_tokens")
    for line in ("\nmax_tokens: ", "\nsamples per question: ", "\nquestions needed: ", "\ncost as recommended: "):
        assert line in out
    assert "at 4 samples: " in out  # the spec's largest budget, in its own unit
    data = json.loads(
        ttc("plan", "examples/compute_optimal.yaml", "--pilot-store", str(tmp_path / "pilot"), "--json").stdout
    )
    assert data["spec_questions"] == 11 and data["as_written"]["samples_per_question"] == 8  # one sum drawn twice


def test_ttc_plan_on_a_store_without_a_pilot_is_one_error_line(tmp_path):
    from tests.conftest import ttc

    Store.open(tmp_path / "empty")
    r = ttc("plan", "examples/compute_optimal.yaml", "--pilot-store", str(tmp_path / "empty"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --pilot-store: ") and r.stderr.count("\n") == 1
