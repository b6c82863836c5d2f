"""The PRM verifier on vLLM's pooling API (`runner="pooling"`, `encode(..., pooling_task="token_classify")`), on CPU.

No process reward model's weights can be had offline, so the reward model here is the converted default model
turned into a token classifier (`convert="classify"`, its head the LM's rows for "No"/"Yes"): nobody trained it to
judge steps, so the scores MEAN NOTHING. What is
checked is the plumbing a real PRM uses: the steps joined by a one-token step tag, one pooled row per tag (the
STEP pooler at the tag's positions), one score per step in [0, 1], `first` trimming, aggregation, and every pass
charged at the reward model's own size. scripts/gpu-check.sh runs a real PRM."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here: ./scripts/test.sh runs this tier in .venv-vllm")

from backend.ledger import prefill_flops
from backend.models.registry import DEFAULT_MODEL
from backend.tasks.base import Question
from backend.verifiers import ScoreRequest, aggregate, create_verifier

TAG = "<|box_end|>"  # a special token of Qwen2.5's vocabulary: always exactly one token


@pytest.fixture(scope="module")
def prm(default_model):
    from backend.engines.vllm_engine import VLLMRewardScorer

    scorer = VLLMRewardScorer(
        default_model.hf_source,
        step_separator=TAG,
        arch=default_model.arch,
        n_ctx=1024,
        kv_cache_gib=1,
        convert="classify",
        # the head: the language model's own output rows for "No" and "Yes" (vLLM's reranker recipe), so the scores
        # are finite softmaxes over two real logits; nobody trained them to judge steps
        hf_overrides={"classifier_from_token": ["No", "Yes"], "method": "no_post_processing"},
    )
    verifier = create_verifier("prm_vllm", {"model": DEFAULT_MODEL, "step_separator": TAG}, scorer=scorer)
    yield verifier, scorer
    scorer.close()


def question() -> Question:
    return Question(
        question_id="q0", task="reasoning_gym", dataset="arithmetic", text="What is (2 + 3) * 2?", reference="10"
    )


def test_untrained_head_plumbing_one_score_per_step_not_meaningful(prm, default_model):
    verifier, scorer = prm
    assert scorer.step_tag_id is not None  # the separator is one token: the STEP pooler is pointed at it
    steps = ("2 + 3 = 5.", "5 * 2 = 10.", "So the answer is 10.")
    full, tail = verifier.score([ScoreRequest(question(), steps), ScoreRequest(question(), steps, first=1)])
    prompt = verifier.prompt(ScoreRequest(question(), steps))
    assert prompt.count(TAG) == len(steps) + 1  # after the question, then after each step
    assert len(full.scores) == 3 and all(0.0 <= s <= 1.0 for s in full.scores)
    assert tail.scores == full.scores[1:]  # one pass scores every step; `first` only trims
    for how in ("last", "min", "product"):
        assert 0.0 <= aggregate(full.scores, how) <= 1.0
    # charged at the reward model's size for every token it read
    [usage] = full.usage
    assert usage.prompt_tokens == scorer.count_tokens(prompt)
    assert verifier.arch == default_model.arch
    assert verifier.estimate_flops(10, 20) == prefill_flops(default_model.arch, 60)


def test_one_pooled_row_per_step_tag(prm):
    """The rows the pooler returns sit at the tag's token positions: one per tag in the text, however many steps."""
    _, scorer = prm
    texts = [f"a{TAG}", f"a{TAG}b{TAG}c{TAG}d{TAG}", "no tag at all"]
    rows = scorer.score(texts)
    assert [len(r) for r in rows] == [1, 4, 0]
