"""Verifiers: aggregation, the oracle, self-verification's P(Yes) from logprobs in one batched call."""

from __future__ import annotations

import pytest

from backend.errors import UnknownNameError
from backend.verifiers import VERIFIERS, ScoreRequest, aggregate, create_verifier
from backend.verifiers.self_verify import SelfVerifier
from tests.fakes import FAKE_MODEL, FakeTask, ScriptedEngine, ScriptedReply


@pytest.mark.parametrize("how, expected", [("last", 0.5), ("min", 0.2), ("product", 0.9 * 0.2 * 0.5), ("mean", 1.6 / 3)])
def test_aggregations(how, expected):
    assert aggregate([0.9, 0.2, 0.5], how) == pytest.approx(expected)


def test_unknown_verifier_and_aggregation_list_known_ones():
    with pytest.raises(UnknownNameError, match="unknown verifier 'prm'.*oracle, prm_vllm, self_verify"):
        create_verifier("prm", task=FakeTask())
    with pytest.raises(UnknownNameError, match="unknown aggregation 'max'.*last, mean, min, product"):
        aggregate([0.1], "max")
    assert set(VERIFIERS) == {"oracle", "self_verify", "prm_vllm"}


def test_oracle_scores_each_step_prefix():
    task = FakeTask(reference="1")
    q = task.questions()[0]
    v = create_verifier("oracle", task=task)
    [r] = v.score([ScoreRequest(q, ("think", "Answer: 1"))])
    assert r.scores == [0.0, 1.0] and v.arch is None
    [r] = v.score([ScoreRequest(q, ("think", "Answer: 2"), first=1)])
    assert r.scores == [0.0]


def test_self_verify_reads_p_yes_from_logprobs_in_one_call():
    def judge(prompt, params):
        assert params.max_tokens == 1 and params.logprobs and params.temperature == 0
        if "bad step" in prompt.split("Question:")[-2]:
            return ScriptedReply("No", {"No": -0.1, "Yes": -2.4, " no": -5.0})
        return ScriptedReply("Yes", {"Yes": -0.2, "No": -1.8, "The": -3.0})

    engine = ScriptedEngine([(r".", judge)])
    task = FakeTask(2)
    v = SelfVerifier(engine, FAKE_MODEL, task)
    qs = task.questions()
    out = v.score([ScoreRequest(qs[0], ("good step", "bad step")), ScoreRequest(qs[1], ("good step",))])
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 3  # every step of every candidate, one call
    import math

    yes, no = math.exp(-0.2), math.exp(-1.8)
    assert out[0].scores[0] == pytest.approx(yes / (yes + no))
    yes, no = math.exp(-2.4), math.exp(-0.1) + math.exp(-5.0)
    assert out[0].scores[1] == pytest.approx(yes / (yes + no))
    assert all(u.completion_tokens == 1 for r in out for u in r.usage)
    # the judge prompt extends the generator's prompt: the prefix cache serves the question and earlier steps
    prompt = engine.calls[0][1].prompt
    assert prompt.startswith("Q: What is 0?\nA:good step\n\nbad step")


def test_prm_vllm_wraps_the_scorer_lazily():
    from backend.verifiers.prm_vllm import PRMVerifier

    class FakeScorer:
        def score(self, prompts):
            return [[0.1 * (i + 1) for i in range(p.count("\n\n") - 1)] for p in prompts]

    task = FakeTask()
    v = create_verifier("prm_vllm", model_name="some/prm", scorer=FakeScorer())
    assert isinstance(v, PRMVerifier)
    [r] = v.score([ScoreRequest(task.questions()[0], ("a", "b", "c"), first=1)])
    assert r.scores == pytest.approx([0.2, 0.3])


@pytest.mark.gpu
def test_prm_vllm_on_gpu():
    pytest.importorskip("vllm")
    from backend.verifiers.prm_vllm import PRMVerifier

    v = PRMVerifier("Qwen/Qwen2.5-Math-PRM-7B")
    [r] = v.score([ScoreRequest(FakeTask().questions()[0], ("1 + 1 = 2", "Answer: 2"))])
    assert len(r.scores) == 2 and all(0.0 <= s <= 1.0 for s in r.scores)
