"""Beam search, lookahead and sequential revisions on the default real model (CPU llama.cpp) with
self-verification through its own logprobs, on 3 easy questions; the trees must land whole in a real store."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.real_model

os.environ.setdefault("TTC_CACHE_DIR", "/tmp/ttccache")


@pytest.fixture(scope="module")
def setup():
    from backend.engines.llamacpp import LlamaCppEngine
    from backend.models.registry import DEFAULT_MODEL, resolve_model
    from backend.tasks.reasoning_gym_task import ReasoningGymTask
    from backend.verifiers import create_verifier

    model = resolve_model(DEFAULT_MODEL)
    task = ReasoningGymTask(
        [
            {
                "name": "basic_arithmetic",
                "size": 3,
                "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
            }
        ],
        seed=0,
    )
    engine = LlamaCppEngine(model, n_parallel=4, n_ctx_per_slot=1024)
    verifier = create_verifier("self_verify", task=task, engine=engine, model=model)
    yield model, task, engine, verifier
    engine.close()


def assert_whole_trees(store, run_id, question_ids):
    df = store.query("SELECT * FROM nodes WHERE run_id = ?", [run_id])
    assert set(df["question_id"]) == set(question_ids)
    for qid, g in df.groupby("question_id"):
        parents = dict(zip(g["node_id"], g["parent_id"]))
        assert list(parents.values()).count(-1) == 1
        for nid in parents:
            seen = 0
            while parents[nid] != -1:
                nid = parents[nid]
                seen += 1
                assert seen < 100
        assert g["is_final"].sum() >= 1, qid
        assert g["selected"].sum() == 1, qid
        assert g.loc[g["selected"], "is_final"].all()
        scored = g[(g["parent_id"] != -1) & g["kind"].isin(["step", "revision"])]
        assert scored["step_score"].between(0, 1).all()
        assert (g["generator_flops"] >= 0).all() and g["generator_flops"].sum() > 0
    return df


@pytest.mark.parametrize(
    "strategy, config",
    [
        ("beam_search", {"n": 4, "width": 2, "max_rounds": 2, "max_tokens": 16}),
        ("lookahead", {"n": 4, "width": 2, "max_rounds": 2, "max_tokens": 12, "lookahead": 1}),
        ("sequential_revisions", {"chains": 2, "chain_length": 2, "max_tokens": 24}),
    ],
)
def test_search_on_real_model_stores_full_trees(setup, tmp_path, strategy, config):
    from backend.strategies.runner import run_search
    from store import Store

    model, task, engine, verifier = setup
    store = Store.open(tmp_path / "store")
    questions = task.questions()
    result = run_search(
        strategy,
        questions,
        task,
        model,
        engine,
        verifier,
        config=config,
        store=store,
        run_id=f"real-{strategy}",
        seed=1,
    )
    df = assert_whole_trees(store, f"real-{strategy}", [q.question_id for q in questions])
    assert result.context.generate_calls <= result.context.rounds * (1 + config.get("lookahead", 0))
    assert result.context.verify_calls <= result.context.rounds  # at most one batched verifier call per round
    if strategy != "lookahead":  # judged on the slot that generated them (lookahead scores the rollout instead)
        assert result.context.prescored_hits > 0
    assert df["verifier_flops"].sum() > 0  # self-verification was charged at the model's size
    for ledger in result.ledgers:
        assert ledger.verifier_flops > 0 and ledger.generator_flops > 0


def test_llamacpp_samples_the_whole_distribution(setup):
    """llama.cpp would keep only the top 40 tokens (and those above 5% of the best) unless told otherwise; a spec's
    temperature + top_p must sample the same distribution as vLLM. At temperature 5 an untruncated sampler picks
    tokens outside the top 40 within a few steps; a truncated one never can."""
    from backend.engines.base import GenerationRequest, SamplingParams
    from backend.engines.llamacpp import slot_body

    model, task, engine, _ = setup
    assert slot_body({"prompt": "x"}, 3) == {"prompt": "x", "top_k": 0, "min_p": 0.0, "id_slot": 3}
    assert slot_body({"prompt": "x", "cache_prompt": True}, 3, prompt_cache=False)["cache_prompt"] is False
    params = SamplingParams(temperature=5.0, top_p=1.0, max_tokens=24, seed=7, logprobs=40)
    [[c]] = engine.generate([GenerationRequest("The capital of France is", params)])
    assert c.logprobs and len(c.logprobs) == c.completion_tokens
    outside = [lp.token for lp in c.logprobs if lp.token not in lp.top]
    assert outside, "every sampled token was among the 40 most likely: llama.cpp's top_k is still on"


def test_llamacpp_restores_a_beam_its_slot_switched_away_from(setup):
    """A slot holds one text: once it moves from beam A to beam B, A's next step would recompute A's own tokens.
    The engine has llama.cpp save each slot state to host memory and restore the best one (SLOT_PROMPT_SIMILARITY
    = 1.0); with llama.cpp's default (0.1) only the prefix A and B share would be found."""
    from backend.engines.base import GenerationRequest, SamplingParams

    _, _, engine, _ = setup
    shared = "The following is a long shared introduction about arithmetic. " * 6
    beam_a = shared + "Alpha branch: we add seven and eight to get fifteen, then multiply by two to get thirty."
    beam_b = shared + "Beta branch: we subtract three from nine to get six, then divide by two to get three."
    params = SamplingParams(temperature=0.0, max_tokens=1, seed=0)

    def one(prompt):  # a single request runs on the first worker's slot: all three share one slot
        [[c]] = engine.generate([GenerationRequest(prompt, params)])
        return c

    a = one(beam_a)
    b = one(beam_b)
    assert b.cached_prompt_tokens < a.prompt_tokens - 10  # B replaced A in the slot beyond their shared prefix
    a_next = one(beam_a + " Next")
    assert a_next.cached_prompt_tokens >= a.prompt_tokens - 1, (a.prompt_tokens, a_next.cached_prompt_tokens)
