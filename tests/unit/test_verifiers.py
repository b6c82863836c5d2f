"""Verifiers: aggregation, the oracle, self-verification's P(Yes) from logprobs in one batched call."""

from __future__ import annotations

import pytest

from backend.errors import EngineError, UnknownNameError
from backend.verifiers import VERIFIERS, ScoreRequest, aggregate, charge, create_verifier
from backend.verifiers.self_verify import INLINE_JUDGE, JUDGE_QUESTION, SelfVerifier
from tests.fakes import FAKE_MODEL, FakeTask, ScriptedEngine, ScriptedReply


@pytest.mark.parametrize(
    "how, expected", [("last", 0.5), ("min", 0.2), ("product", 0.9 * 0.2 * 0.5), ("mean", 1.6 / 3)]
)
def test_aggregations(how, expected):
    assert aggregate([0.9, 0.2, 0.5], how) == pytest.approx(expected)


def test_unknown_verifier_and_aggregation_list_known_ones():
    with pytest.raises(
        UnknownNameError, match="unknown verifier 'prm'.*oracle, prm_vllm, self_verify, self_verify_chat"
    ):
        create_verifier("prm", task=FakeTask())
    with pytest.raises(UnknownNameError, match="unknown aggregation 'max'.*last, mean, min, product"):
        aggregate([0.1], "max")
    assert set(VERIFIERS) == {"oracle", "self_verify", "self_verify_chat", "prm_vllm"}


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
        if prompt.endswith("bad step" + INLINE_JUDGE):
            return ScriptedReply("No", {"No": -0.1, "Yes": -2.4, " no": -5.0})
        return ScriptedReply("Yes", {"Yes": -0.2, "No": -1.8, "The": -3.0})

    engine = ScriptedEngine([(r".", judge)])
    task = FakeTask(2)
    v = SelfVerifier(engine, FAKE_MODEL, task)
    qs = task.questions()
    out = v.score([ScoreRequest(qs[0], ("good step", "bad step")), ScoreRequest(qs[1], ("good step",))])
    # every step of every candidate in one call (+ the one-off measurement of the judge turn's length)
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 3 + 1
    import math

    yes, no = math.exp(-0.2), math.exp(-1.8)
    assert out[0].scores[0] == pytest.approx(yes / (yes + no))
    yes, no = math.exp(-2.4), math.exp(-0.1) + math.exp(-5.0)
    assert out[0].scores[1] == pytest.approx(yes / (yes + no))
    assert all(u.completion_tokens == 1 for r in out for u in r.usage)
    # the judge prompt extends the generator's prompt: the prefix cache serves the question and earlier steps
    prompt = engine.calls[0][1].prompt
    assert prompt.startswith("Q: What is 0?\nA:good step\n\nbad step")


def test_self_verify_judges_inline_by_default_or_in_a_chat_turn():
    """Inline (default): the question written on in the answer, the cheapest judge on CPU. Chat: the template's own
    end of the assistant turn + the question as a user turn + the start of the reply. Both extend the generator's
    prompt + solution; an unknown judge names the allowed ones."""
    import dataclasses

    from backend.prompting import build_prompt

    template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    chat_model = dataclasses.replace(FAKE_MODEL, prompt_style="chat", chat_template=template)
    task = FakeTask(1)
    q = task.questions()[0]
    engine = ScriptedEngine([(r".", ScriptedReply("Yes", {"Yes": -0.1, "No": -2.3}))])

    inline = create_verifier("self_verify", task=task, engine=engine, model=chat_model)
    assert inline.name == "self_verify"
    assert inline.judge_prompt(q, "1 + 1 = 2") == build_prompt(chat_model, task, q) + "1 + 1 = 2" + INLINE_JUDGE

    chat = create_verifier("self_verify_chat", task=task, engine=engine, model=chat_model)
    assert chat.name == "self_verify_chat"
    assert chat.judge_prompt(q, "1 + 1 = 2") == (
        build_prompt(chat_model, task, q) + "1 + 1 = 2" + f"<|end|><|user|>{JUDGE_QUESTION}<|end|><|assistant|>"
    )
    # a model without a chat template falls back to a plain question/answer suffix
    assert SelfVerifier(engine, FAKE_MODEL, task, judge="chat").turn == f"\n\nQuestion: {JUDGE_QUESTION}\nAnswer:"

    with pytest.raises(UnknownNameError, match="unknown self-verification judge 'turn'.*chat, inline"):
        SelfVerifier(engine, chat_model, task, judge="turn")


def test_prm_vllm_wraps_the_scorer_lazily():
    from backend.verifiers.prm_vllm import PRMVerifier

    class FakeScorer:
        def score(self, prompts):
            return [[0.1 * (i + 1) for i in range(p.count("\n\n") - 1)] for p in prompts]

    task = FakeTask()
    v = create_verifier("prm_vllm", {"model": "some/prm"}, task=task, scorer=FakeScorer())
    assert isinstance(v, PRMVerifier)
    [r] = v.score([ScoreRequest(task.questions()[0], ("a", "b", "c"), first=1)])
    assert r.scores == pytest.approx([0.2, 0.3])


def test_prm_vllm_scores_with_its_own_model_and_is_charged_at_its_size_never_0():
    """The worker used to hand prm_vllm the generator's name and an arch that was never set: 0 FLOPs charged."""
    from backend.ledger import Ledger, prefill_flops
    from tests.fakes import GEN_ARCH, VERIFIER_ARCH

    class FakeScorer:
        arch = VERIFIER_ARCH

        def score(self, prompts):
            return [[0.5] for _ in prompts]

    class Unsized(FakeScorer):
        arch = None

    task, generator = FakeTask(), ScriptedEngine([])
    v = create_verifier(
        "prm_vllm", {"model": "org/prm-1.5b"}, task=task, engine=generator, model=FAKE_MODEL, scorer=FakeScorer()
    )
    assert v.model == "org/prm-1.5b" != FAKE_MODEL.name
    [r] = v.score([ScoreRequest(task.questions()[0], ("x",))])
    tokens = r.usage[0].prompt_tokens
    charged = charge(Ledger(), v, r)
    assert charged == pytest.approx(float(prefill_flops(VERIFIER_ARCH, tokens))) and charged > 0
    assert charged != pytest.approx(float(prefill_flops(GEN_ARCH, tokens)))
    blind = create_verifier("prm_vllm", {"model": "org/prm"}, task=task, scorer=Unsized())
    [r] = blind.score([ScoreRequest(task.questions()[0], ("x",))])
    with pytest.raises(EngineError, match="architecture of reward model 'org/prm' is unknown"):
        charge(Ledger(), blind, r)


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("prm_vllm", {}, "verifiers[1].model: required but missing; allowed: the process reward model"),
        (
            "prm_vllm",
            {"model": "m", "bogus": 1},
            "verifiers[1].bogus: not an option of prm_vllm; allowed: model, step_separator",
        ),
        ("oracle", {"x": 1}, "verifiers[1].x: not an option of oracle; allowed: none"),
        ("nope", {"x": 1}, "verifiers[1].name: unknown verifier 'nope'"),
    ],
)
def test_verifier_options_name_the_field(name, options, message):
    from backend.errors import SpecError
    from backend.verifiers import verifier_options

    with pytest.raises(SpecError) as err:
        verifier_options(name, options, "verifiers[1]")
    assert str(err.value).startswith(message)


def test_a_spec_lists_verifiers_with_options_once_each():
    from backend.config import parse_spec
    from backend.errors import SpecError

    base = dict(name="x", models=["m"], task=dict(kind="humaneval"), samples_per_question=1)
    spec = parse_spec(base | {"verifiers": ["self_verify", {"name": "prm_vllm", "model": "org/prm"}]})
    assert spec.verifier_specs() == [("self_verify", {}), ("prm_vllm", {"model": "org/prm"})]
    with pytest.raises(SpecError, match="verifier 'oracle' is listed twice"):
        parse_spec(base | {"verifiers": ["oracle", {"name": "oracle"}]})


@pytest.mark.gpu
def test_prm_vllm_on_gpu():
    pytest.importorskip("vllm")
    from backend.ledger import Ledger
    from backend.verifiers.prm_vllm import PRMVerifier

    v = create_verifier("prm_vllm", {"model": "Qwen/Qwen2.5-Math-PRM-7B"}, task=FakeTask())
    assert isinstance(v, PRMVerifier)
    [r] = v.score([ScoreRequest(FakeTask().questions()[0], ("1 + 1 = 2", "Answer: 2"))])
    assert len(r.scores) == 2 and all(0.0 <= s <= 1.0 for s in r.scores)
    assert charge(Ledger(), v, r) > 0  # at the PRM's own size, read from its config when vLLM loaded it


def test_self_verify_judge_extends_the_generator_text_and_is_charged_by_the_search_cache():
    """The judge prompt is the generator's prompt + solution + judge turn, so a search's PrefixCache (shared with
    the generator) charges only the judge turn; a longer solution's judge reuses the shorter one's context."""
    import dataclasses

    from backend.ledger import Ledger, PrefixCache, decode_flops, prefill_flops
    from backend.prompting import build_prompt
    from backend.verifiers.base import charge

    task = FakeTask(1)
    q = task.questions()[0]

    class LyingEngine(ScriptedEngine):  # reports no cache at all: the charge must not read it
        def generate(self, requests, on_complete=None, should_stop=None):
            out = super().generate(requests, on_complete, should_stop)
            return [[dataclasses.replace(c, cached_prompt_tokens=0) for c in comps] for comps in out]

    engine = LyingEngine([(r".", ScriptedReply("Yes", {"Yes": -0.1, "No": -2.3}))])
    v = SelfVerifier(engine, FAKE_MODEL, task)
    head = build_prompt(FAKE_MODEL, task, q)
    steps = ("first step " * 8, "second step " * 8)
    cache = PrefixCache()
    generated = head + steps[0]
    cache.add(generated, 50)  # the generator processed the prompt and the first step: 50 tokens, say

    [first] = v.score([ScoreRequest(q, steps[:1], 0, "\n\n")])
    u = first.usage[0]
    assert u.prompt.startswith(generated) and u.prompt == v.judge_prompt(q, steps[0])
    ledger = Ledger()
    charged = charge(ledger, v, first, cache)
    assert charged == pytest.approx(
        float(prefill_flops(v.arch, u.prompt_tokens, 50)) + float(decode_flops(v.arch, u.prompt_tokens, 1))
    )
    assert ledger.verifier_tokens == u.prompt_tokens - 50 + u.completion_tokens  # only the judge turn

    # a judge of a longer solution extends the shorter one's context (cold cache: nothing generated was recorded)
    cold, ledger = PrefixCache(), Ledger()
    charge(ledger, v, first, cold)
    assert ledger.verifier_tokens == u.prompt_tokens + u.completion_tokens
    [second] = v.score([ScoreRequest(q, steps, 1, "\n\n")])
    u2 = second.usage[0]
    charge(ledger, v, second, cold)
    reused = u.prompt_tokens - v.turn_bound()  # the first judge's context; its turn discounted by the upper bound
    assert 0 < reused < u2.prompt_tokens
    assert ledger.verifier_tokens == u.prompt_tokens + u2.prompt_tokens - reused + 2

    # without a search cache the engine's own report is charged (pool scoring)
    pool = Ledger()
    charge(pool, v, first)
    assert pool.verifier_tokens == u.prompt_tokens + u.completion_tokens
