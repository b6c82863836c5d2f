"""Pool scoring charges a verifier pass by the ledger's one caching rule (the idealised prefix cache, as a search
charges it), never by the engine's cache report: the same pool costs the same whatever the engine says it cached,
and every charge is recomputed from the row's stored token counts (backend.pricing's docstring)."""

import dataclasses
import json
import random

import numpy as np

from backend.config import ModelSpec, parse_spec
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun
from backend.pricing import pass_flops
from backend.tasks import create_task
from store import Store
from tests.fakes import FAKE_MODEL, GEN_ARCH, ScriptedEngine, ScriptedReply

RULES = [(r"Is the last step correct", ScriptedReply("Yes", {"Yes": -0.2, "No": -1.8})), (r".", "Answer: 2")]


class ReportingEngine(ScriptedEngine):
    """Reports `cached_prompt_tokens` of its own choosing, as a llama.cpp slot that happened to hold some text would."""

    def __init__(self, report):
        super().__init__(RULES)
        self.report = report

    def generate(self, requests, on_complete=None, should_stop=None):
        out = super().generate(requests, on_complete, should_stop)
        return [[dataclasses.replace(c, cached_prompt_tokens=self.report(c)) for c in comps] for comps in out]


def _scores(tmp_path, name, engine):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(dict(id=f"q{i}", problem=f"{i}+1", answer=str(i + 1))) + "\n" for i in range(3)))
    spec = parse_spec(
        dict(
            name="score",
            models=["scripted"],
            task=dict(kind="math_jsonl", path=str(path)),
            samples_per_question=3,
            max_tokens=16,
            verifiers=["self_verify"],
        )
    )
    task = create_task(spec.task)
    prepared = PreparedRun(spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)])
    store = Store.open(tmp_path / name)
    execute(prepared, store, engine_factory=lambda model, options: engine)
    return store.query(
        """SELECT c.*, s.prompt_tokens, s.completion_tokens FROM scores c JOIN samples s USING (run_id, model,
           question_id, sample_idx) ORDER BY question_id, sample_idx"""
    )


def test_pool_scores_cost_the_same_whatever_the_engine_reports_cached(tmp_path):
    rng = random.Random(0)
    nothing = _scores(tmp_path, "a", ReportingEngine(lambda c: 0))
    everything = _scores(tmp_path, "b", ReportingEngine(lambda c: c.prompt_tokens))
    noise = _scores(tmp_path, "c", ReportingEngine(lambda c: rng.randrange(c.prompt_tokens + 1)))
    assert len(nothing) == 9 and nothing["verifier_flops"].gt(0).all()
    for other in (everything, noise):
        np.testing.assert_array_equal(nothing["verifier_flops"], other["verifier_flops"])


def test_a_pool_score_is_recomputed_from_its_stored_token_counts(tmp_path):
    df = _scores(tmp_path, "s", ReportingEngine(lambda c: 0))
    # self-verification on the generating engine finds the sample's prompt + completion cached: it pays the judge turn
    cached = np.minimum(df["prompt_tokens"] + df["completion_tokens"], df["verifier_prompt_tokens"])
    np.testing.assert_array_equal(df["verifier_cached_tokens"], cached)
    assert (df["verifier_prompt_tokens"] > cached).all() and df["verifier_completion_tokens"].eq(1).all()
    expected = pass_flops(GEN_ARCH, df["verifier_prompt_tokens"], cached, df["verifier_completion_tokens"])
    np.testing.assert_allclose(df["verifier_flops"], expected, rtol=1e-12)
    assert expected.max() < pass_flops(GEN_ARCH, df["verifier_prompt_tokens"], 0, 1).min()  # cheaper than uncached


def test_a_verifier_off_the_generator_finds_nothing_cached(tmp_path):
    from backend.execution.scoring import score_pool
    from tests.fakes import ScriptedVerifier

    df = _scores(tmp_path, "s", ReportingEngine(lambda c: 0))
    store = Store.open(tmp_path / "s")
    run_id = df["run_id"].iloc[0]
    questions = create_task(
        parse_spec(
            dict(
                name="x",
                models=["scripted"],
                task=dict(kind="math_jsonl", path=str(tmp_path / "q.jsonl")),
                samples_per_question=1,
            )
        ).task
    ).questions()
    v = ScriptedVerifier(default=0.5)
    assert score_pool(store, run_id, "scripted", questions, v, reads_generator_cache=False) == 9
    rows = store.query("SELECT * FROM scores WHERE verifier = 'scripted_verifier'")
    assert rows["verifier_cached_tokens"].eq(0).all()
    expected = pass_flops(v.arch, rows["verifier_prompt_tokens"], rows["verifier_cached_tokens"], 0)
    np.testing.assert_allclose(rows["verifier_flops"], expected, rtol=1e-12)
