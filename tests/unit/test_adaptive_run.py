"""An adaptive run end to end on a scripted engine: spec → worker → store. The ledger never exceeds the total
budget, a settled question stops after its first round, the logged decisions replay to the same allocation, a
run killed mid-way resumes to exactly the allocation of an uninterrupted one, and bad adaptive specs are refused
naming the field."""

import json

import pytest

from backend.config import ModelSpec, parse_spec
from backend.errors import SpecError
from backend.execution.allocation import (
    QuestionState,
    logged_rounds,
    policy_of,
    question_prompt_tokens,
    replay,
    total_flops,
)
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun
from backend.tasks import create_task
from store import Store
from tests.fakes import FAKE_MODEL, ScriptedEngine


def log_inputs(log) -> list[tuple[int, float, list[QuestionState]]]:
    """What `backend.execution.allocation.replay` takes, from a logged `allocations` table: each round's remaining budget and
    question states (the inverse of `decisions_table`)."""
    out = []
    for round_, g in log.groupby("round", sort=True):
        states = [
            QuestionState(
                r.question_id, r.samples_before, r.votes, r.leader, r.runner_up, r.prefill_bound, r.sample_bound
            )
            for r in g.itertuples()
        ]
        out.append((int(round_), float(g["remaining_flops"].iloc[0]), states))
    return out


PROBLEMS = [
    dict(id="easy", problem="alpha: 1+1", answer="2"),  # unanimous and right: settles after the first round
    dict(id="split", problem="bravo: 2+2", answer="4"),  # right on half the seeds
    dict(id="noisy", problem="charlie: 3+3", answer="6"),  # a different answer almost every time: hopeless
    dict(id="lean", problem="delta: 4+4", answer="8"),  # right on two seeds of three
]


def _reply(prompt: str, p) -> str:
    seed = p.seed or 0
    if "alpha" in prompt:
        return "Answer: 2"
    if "bravo" in prompt:
        return "Answer: 4" if seed % 2 else "Answer: 5"
    if "charlie" in prompt:
        return f"Answer: {seed % 97}"
    return "Answer: 8" if seed % 3 else "Answer: 9"


class Engine(ScriptedEngine):
    def __init__(self, fail_after_calls: int | None = None):
        super().__init__([(r".", _reply)])
        self.fail_after_calls = fail_after_calls

    def generate(self, requests, on_complete=None, should_stop=None):
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise RuntimeError("the engine died")
        return super().generate(requests, on_complete, should_stop)


def _prepared(tmp_path, **adaptive):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS))
    spec = parse_spec(
        dict(
            name="adaptive",
            models=["scripted"],
            task=dict(kind="math_jsonl", path=str(path)),
            samples_per_question=16,
            max_tokens=16,
            adaptive=dict(first_round=4, round_samples=4, hopeless_after=8, **({"total_budget": 30} | adaptive)),
        )
    )
    task = create_task(spec.task)
    return PreparedRun(spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)])


def _total(prepared):
    """The total budget as the run priced it: the scripted engine counts one token per character."""
    return total_flops(prepared, FAKE_MODEL, question_prompt_tokens(prepared, FAKE_MODEL, len))


LEDGER = """SELECT sum(p) + sum(d) AS spent FROM (
    SELECT question_id, max(prefill_flops) AS p, sum(decode_flops) AS d FROM samples GROUP BY 1)"""


def _run(tmp_path, name, engine, **adaptive):
    prepared = _prepared(tmp_path, **adaptive)
    store = Store.open(tmp_path / name)
    execute(prepared, store, engine_factory=lambda model, options: engine)
    return prepared, store


@pytest.mark.parametrize("budget", [4.5, 5, 6])
def test_the_ledger_never_exceeds_the_total_budget(tmp_path, budget):
    prepared, store = _run(tmp_path, "s", Engine(), total_budget=budget)
    spent, total = store.query(LEDGER)["spent"][0], _total(prepared)
    assert spent <= total
    log = logged_rounds(store, prepared.run_id, "scripted")
    last = log[log["round"] == log["round"].max()]
    assert "out_of_budget" in set(last["reason"])  # the budget, not the questions, ended these runs
    assert int(log["samples"].sum()) == store.query("SELECT count(*) AS n FROM samples")["n"][0]


def test_adaptive_run_spends_where_it_pays(tmp_path):
    prepared, store = _run(tmp_path, "s", Engine())
    assert store.get_run(prepared.run_id)["status"] == "done"
    assert store.query(LEDGER)["spent"][0] <= _total(prepared)
    per_q = dict(store.query("SELECT question_id, count(*) AS n FROM samples GROUP BY 1").values.tolist())
    assert per_q["easy"] == 4  # unanimous after its first round: settled, no more
    assert per_q["split"] > per_q["easy"] and per_q["lean"] > per_q["easy"]
    log = logged_rounds(store, prepared.run_id, "scripted")
    easy = log[log["question_id"] == "easy"]
    assert easy["reason"].tolist()[:2] == ["first_round", "settled"]
    # sample indices are contiguous per question and each (question, index) once
    keys = store.query(
        "SELECT question_id, max(sample_idx) + 1 AS m, count(DISTINCT sample_idx) AS n FROM samples GROUP BY 1"
    )
    assert (keys["m"] == keys["n"]).all()
    assert int(log["samples"].sum()) == sum(per_q.values())
    # the decisions replay from their logged inputs
    decided = [(r.question_id, r.round, r.samples, r.flops_bound, r.reason) for r in log.itertuples()]
    replayed = [
        (d.question_id, d.round, d.samples, d.flops_bound, d.reason)
        for d in replay(log_inputs(log), policy_of(prepared.spec))
    ]
    assert replayed == decided
    again = execute(prepared, store, engine_factory=lambda model, options: Engine())
    assert again["generated"] == 0  # finished: a re-run decides nothing new


def test_a_run_killed_mid_way_resumes_to_the_allocation_of_an_uninterrupted_one(tmp_path):
    clean_prepared, clean = _run(tmp_path, "clean", Engine())
    prepared = _prepared(tmp_path)
    store = Store.open(tmp_path / "killed")
    with pytest.raises(RuntimeError, match="the engine died"):
        execute(prepared, store, engine_factory=lambda model, options: Engine(fail_after_calls=2))
    assert store.get_run(prepared.run_id)["status"] == "failed"
    execute(prepared, store, engine_factory=lambda model, options: Engine())
    cols = "question_id, round, first_idx, samples, flops_bound, reason"
    sql = f"SELECT {cols} FROM allocations ORDER BY round, question_id"
    assert store.query(sql).equals(clean.query(sql))
    same = "SELECT question_id, sample_idx, seed, answer FROM samples ORDER BY 1, 2"
    assert store.query(same).equals(clean.query(same))


def test_the_supermajority_rule_stops_on_the_leaders_share(tmp_path):
    prepared, store = _run(tmp_path, "s", Engine(), stop="supermajority", supermajority=0.75)
    log = logged_rounds(store, prepared.run_id, "scripted")
    first = log[(log["round"] == 1) & (log["question_id"] == "easy")]
    assert first["reason"].tolist() == ["settled"] and first["settled_probability"].tolist() == [1.0]


def test_a_budget_too_small_for_one_sample_is_refused_before_anything_is_sampled(tmp_path):
    prepared = _prepared(tmp_path)
    small = prepared.spec.model_copy(
        update={"adaptive": prepared.spec.adaptive.model_copy(update={"total_budget": 0.01})}
    )
    prepared = PreparedRun(small, small.run_id(), prepared.task, prepared.questions, prepared.models)
    store = Store.open(tmp_path / "s")
    with pytest.raises(SpecError, match=r"^adaptive.total_budget: .* FLOPs do not pay one sample of even one question"):
        execute(prepared, store, engine_factory=lambda model, options: Engine())
    assert store.query("SELECT count(*) AS n FROM samples")["n"][0] == 0
    assert store.query("SELECT count(*) AS n FROM allocations")["n"][0] == 0


@pytest.mark.parametrize(
    "adaptive, extra, message",
    [
        ({"total_budget": 0}, {}, "adaptive.total_budget: Input should be greater than 0"),
        ({"total_budget": 8, "first_round": 32}, {}, "adaptive.first_round: 32 is more than samples_per_question (16)"),
        ({"total_budget": 8, "stop": "vibes"}, {}, "adaptive.stop: Input should be 'beta' or 'supermajority'"),
        ({"total_budget": 8, "confidence": 1.0}, {}, "adaptive.confidence: Input should be less than 1"),
        (
            {"total_budget": 8, "budget": 3},
            {},
            "adaptive.budget: unknown key; allowed: total_budget, unit, per_question, stop",
        ),
        ({"total_budget": 8}, {"engine": {"kind": "llamacpp", "replicas": 2}}, "engine.replicas: adaptive allocation"),
        ({"total_budget": 100, "unit": "flops"}, {}, "adaptive.total_budget: 100 FLOPs buys no token"),
        ({"total_budget": 1e12}, {}, "adaptive.total_budget: 1e+12 samples looks like a FLOP count"),
    ],
)
def test_bad_adaptive_specs_name_the_field(adaptive, extra, message):
    spec = dict(
        name="a",
        models=["gemma-3-270m"],
        task={"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": 4}]},
        samples_per_question=16,
        adaptive=adaptive,
        **extra,
    )
    with pytest.raises(SpecError) as e:
        parse_spec(spec)
    assert str(e.value).startswith(message), str(e.value)


def test_replayed_on_a_uniform_pool_of_the_same_seeds_the_allocation_is_the_live_one(tmp_path):
    """An adaptive run draws a prefix of each question's samples (same seeds): replaying the allocator on a
    uniform pool reproduces the live run's decisions exactly, which is what bench/adaptive.py relies on."""
    from backend.execution.allocation import pool_questions, simulate

    prepared, live = _run(tmp_path, "live", Engine(), total_budget=6)
    uniform = prepared.spec.model_copy(update={"adaptive": None, "name": "uniform"})
    pool_run = PreparedRun(uniform, uniform.run_id(), prepared.task, prepared.questions, prepared.models)
    pool = Store.open(tmp_path / "pool")
    execute(pool_run, pool, engine_factory=lambda model, options: Engine())
    drawn, decisions = simulate(
        pool_questions(pool, pool_run.run_id, FAKE_MODEL, prepared),
        _total(prepared),
        policy_of(prepared.spec),
    )
    log = logged_rounds(live, prepared.run_id, "scripted")
    assert sorted((d.round, d.question_id, d.samples, d.reason) for d in decisions) == [
        (r.round, r.question_id, r.samples, r.reason) for r in log.itertuples()
    ]
    counts = live.query("SELECT question_id, count(*) AS n FROM samples GROUP BY 1")
    assert drawn == dict(zip(counts["question_id"], counts["n"]))


def test_pool_analyses_refuse_an_adaptive_run_in_one_line_and_the_default_selection_leaves_it_out(
    tmp_path, monkeypatch, capsys
):
    """Optionally-stopped samples are not exchangeable (the settled question stops after 4 unanimous votes):
    coverage, selection and compute-optimal pool rules refuse the run, naming it and where its result is read;
    `ttc compute-optimal` and the pages leave it out of their default selection and say so."""
    from streamlit.testing.v1 import AppTest

    from backend.cli import main
    from backend.errors import AdaptiveRunError
    from backend.metrics.pools import load_pool
    from backend.metrics.study import compute_optimal_study
    from backend.run_selection import default_runs_of
    from tests.ui.conftest import APP

    prepared, store = _run(tmp_path, "s", Engine())
    run_id = prepared.run_id
    con = store.connect()
    try:
        with pytest.raises(AdaptiveRunError) as refused:
            load_pool(con, [run_id], "scripted")
        with pytest.raises(AdaptiveRunError):
            compute_optimal_study(con, [run_id], "scripted", verifier=None)
        default = default_runs_of(con)
    finally:
        con.close()
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"run {run_id} is adaptive: its samples were drawn with optional")
    assert "read its result on the Run page" in message
    assert default.run_ids == () and dict(default.left_out) == {
        run_id: "adaptive: not an exchangeable pool, read it on the Run page"
    }

    assert main(["compute-optimal", "--store", str(store.root), "--run", run_id]) == 2
    assert capsys.readouterr().err.strip().endswith(message)
    assert main(["compute-optimal", "--store", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert f"note: run {run_id} left out (adaptive: not an exchangeable pool" in err
    assert "no finished, non-adaptive run to analyse by default" in err

    monkeypatch.setenv("TTC_STORE", str(store.root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/coverage.py")
    at.query_params["runs"] = [run_id]
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [message]


class DenseEngine(Engine):
    """A tokenizer three times denser than one token per character (as real BPEs are on English): the allocator
    prices with the engine's own count, not a character or byte bound, and still keeps to the budget."""

    def count_tokens(self, text: str) -> int:
        return (len(text) + 2) // 3

    def generate(self, requests, on_complete=None, should_stop=None):
        import dataclasses

        def fix(req, comps):
            return [dataclasses.replace(c, prompt_tokens=self.count_tokens(req.prompt)) for c in comps]

        def relay(ri, req, comps):
            if on_complete:
                on_complete(ri, req, fix(req, comps))

        out = super().generate(requests, relay, should_stop)
        return [fix(req, comps) for req, comps in zip(requests, out)]


@pytest.mark.parametrize("budget", [4.5, 6])
def test_the_allocator_prices_with_the_models_token_counts_and_keeps_the_budget(tmp_path, budget):
    engine = DenseEngine()
    prepared, store = _run(tmp_path, "d", engine, total_budget=budget)
    total = total_flops(prepared, FAKE_MODEL, question_prompt_tokens(prepared, FAKE_MODEL, engine.count_tokens))
    assert total < _total(prepared)  # the same budget in samples is fewer FLOPs with the denser count
    stored = store.query("SELECT DISTINCT question_id, prompt_tokens FROM samples")
    counted = question_prompt_tokens(prepared, FAKE_MODEL, engine.count_tokens)
    assert all(counted[q] == p for q, p in zip(stored["question_id"], stored["prompt_tokens"]))
    assert store.query(LEDGER)["spent"][0] <= total
    assert float(logged_rounds(store, prepared.run_id, "scripted")["remaining_flops"].iloc[0]) == total
