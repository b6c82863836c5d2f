"""Strategy selection logic, budgets and batching, pinned with a scripted engine and a scripted verifier."""

from __future__ import annotations

import json
import math
import re

import pytest

from backend.errors import SpecError, UnknownNameError
from backend.ledger import sampling_flops
from backend.strategies import STRATEGIES, StrategyOptions, create_strategy, get_strategy, param_table, validate_config
from backend.strategies.base import RatioSweep
from backend.strategies.rebase import allocate
from backend.strategies.runner import run_search
from tests.fakes import FAKE_MODEL, GEN_ARCH, FakeTask, ScriptedEngine, ScriptedReply, ScriptedVerifier


def search(strategy, engine, verifier=None, n_questions=1, budget=None, **config):
    task = FakeTask(n_questions)
    return run_search(
        strategy, task.questions(), task, FAKE_MODEL, engine, verifier, config=config, budget_flops=budget
    )


def nodes_by_text(result, qi=0):
    return {n.text: n for n in result.context.trees[qi].nodes}


# ---- the registry and the parameter table ---------------------------------------------------------------------
def test_every_parameter_has_help_and_a_valid_default():
    for name, entry in STRATEGIES.items():
        assert entry.help, name
        assert issubclass(entry.options, StrategyOptions), name  # strict, and its errors read as the table's
        fields = entry.options.model_fields
        for key, f in fields.items():
            assert f.description and len(f.description) > 10, (name, key)
            assert validate_config(name, {key: f.default})[key] == f.default
        assert validate_config(name) == {k: f.default for k, f in fields.items()}  # defaults pass the cross-field rules
        assert [row["name"] for row in param_table(name)] == list(fields)
        assert entry.takes_ratios == isinstance(create_strategy(name), RatioSweep)


def test_aggregation_choices_are_the_verifiers_aggregations():
    from backend.verifiers import AGGREGATIONS

    rows = [row for name in STRATEGIES for row in param_table(name) if row["name"] == "aggregation"]
    assert rows and all(row["allowed"] == ", ".join(repr(a) for a in AGGREGATIONS) for row in rows)


# What a search stores as its configuration (nodes.config) for each strategy's defaults: the store and the
# analysis find a search by this text, so a change here would split old and new searches of one configuration.
STORED_DEFAULTS = {
    "best_of_n": '{"aggregation": "last", "delimiter": "\\n\\n", "max_tokens": 512, "n": 8, "temperature": 0.8}',
    "weighted_best_of_n": '{"aggregation": "last", "delimiter": "\\n\\n", "max_tokens": 512, "n": 8, "temperature": 0.8}',
    "majority": '{"max_tokens": 512, "n": 8, "temperature": 0.8}',
    "beam_search": '{"aggregation": "last", "delimiter": "\\n\\n", "max_rounds": 40, "max_tokens": 256, "n": 16, '
    '"temperature": 0.8, "width": 4}',
    "lookahead": '{"aggregation": "last", "delimiter": "\\n\\n", "lookahead": 2, "max_rounds": 40, "max_tokens": 256, '
    '"n": 16, "temperature": 0.8, "width": 4}',
    "dvts": '{"aggregation": "last", "delimiter": "\\n\\n", "max_rounds": 40, "max_tokens": 256, "n": 16, '
    '"temperature": 0.8, "width": 4}',
    "sequential_revisions": '{"aggregation": "last", "chain_length": 4, "chains": 2, "context_attempts": 4, '
    '"delimiter": "\\n\\n", "max_tokens": 512, "select": "verifier", "temperature": 0.8}',
    "budget_forcing": '{"answer_tokens": 32, "extensions": 2, "n": 1, "select": "majority", "temperature": 0.8, '
    '"thinking_tokens": 512, "wait_word": "Wait"}',
    "particle_filtering": '{"aggregation": "last", "delimiter": "\\n\\n", "max_rounds": 40, "max_tokens": 256, '
    '"n": 8, "softmax_temperature": 1.0, "temperature": 0.8}',
    "first_finish": '{"max_tokens": 512, "n": 8, "temperature": 0.8}',
    "rebase": '{"aggregation": "last", "delimiter": "\\n\\n", "max_rounds": 40, "max_tokens": 256, "n": 16, '
    '"softmax_temperature": 0.2, "temperature": 0.8}',
}


def test_stored_configurations_are_those_searches_were_stored_under():
    from backend.strategies.runner import search_record

    assert set(STORED_DEFAULTS) == set(STRATEGIES)
    for name, text in STORED_DEFAULTS.items():
        assert json.dumps(validate_config(name), sort_keys=True) == text, name
    # a float parameter given as a whole number is stored as a float, as it always was
    record = search_record(validate_config("best_of_n", {"temperature": 1}), 1e12, "self_verify", 0)
    assert json.dumps(record, sort_keys=True) == (
        '{"aggregation": "last", "budget_flops": 1000000000000.0, "delimiter": "\\n\\n", "max_tokens": 512, "n": 8, '
        '"seed": 0, "temperature": 1.0, "verifier": "self_verify"}'
    )


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as e:
        get_strategy("beam_serach")
    assert "unknown strategy 'beam_serach'" in str(e.value)
    assert "beam_search" in str(e.value) and "best_of_n" in str(e.value)


@pytest.mark.parametrize(
    "name, config, message",
    [
        ("beam_search", {"widht": 4}, "strategy.widht: not a parameter of beam_search"),
        ("beam_search", {"n": 16, "width": 5}, "strategy.width: N=16 is not a multiple of width M=5"),
        ("beam_search", {"max_rounds": 41}, "strategy.max_rounds: 41 is out of range"),
        ("beam_search", {"aggregation": "max"}, "strategy.aggregation: 'max' is not allowed"),
        ("sequential_revisions", {"context_attempts": 5}, "strategy.context_attempts: 5 is out of range"),
        ("best_of_n", {"n": "8"}, "strategy.n: must be int, got '8'; allowed: int in [1, 4096]"),
        ("best_of_n", {"n": 8.0}, "strategy.n: must be int, got 8.0; allowed: int in [1, 4096]"),
        ("best_of_n", {"n": True}, "strategy.n: must be int, got True; allowed: int in [1, 4096]"),
        ("best_of_n", {"temperature": 3}, "strategy.temperature: 3.0 is out of range; allowed: float in [0, 2]"),
        (
            "best_of_n",
            {"temperature": "hot"},
            "strategy.temperature: must be float, got 'hot'; allowed: float in [0, 2]",
        ),
        (
            "best_of_n",
            {"aggregation": 1},
            "strategy.aggregation: must be str, got 1; allowed: 'last', 'min', 'product'",
        ),
        ("best_of_n", {"delimiter": None}, "strategy.delimiter: must be str, got None; allowed: any text"),
        # a misspelt key first, then the parameters in their table's order, then the cross-field rules
        ("beam_search", {"n": 0, "widht": 4}, "strategy.widht: not a parameter of beam_search; allowed: n, width,"),
        ("beam_search", {"width": 0, "n": 0}, "strategy.n: 0 is out of range; allowed: int in [1, 4096]"),
        ("beam_search", {"width": 5, "max_rounds": 41}, "strategy.max_rounds: 41 is out of range"),
        (
            "dvts",
            {"n": 16, "width": 32},
            "strategy.width: N=16 is not a multiple of width M=32; allowed: a divisor of n",
        ),
        ("lookahead", {"width": 3}, "strategy.width: N=16 is not a multiple of width M=3; allowed: a divisor of n"),
    ],
)
def test_bad_config_names_the_field(name, config, message):
    with pytest.raises(SpecError) as e:
        validate_config(name, config)
    assert str(e.value).startswith(message)


# ---- beam search keeps the top N/M by the configured aggregation ----------------------------------------------
BEAM_SCORES = {
    "P0": 0.8,
    "P1": 0.4,
    "P2": 0.5,
    "X1": 0.1,
    "X2": 0.05,
    "X3": 0.02,
    "c00": 0.4,
    "c01": 0.5,
    "c10": 0.7,
    "c11": 0.7,
    "c20": 0.5,
    "c21": 0.9,
}


def beam_engine():
    return ScriptedEngine(
        [
            (r"A:$", ["P0", "X1", "P1", "X2", "P2", "X3"]),
            (r"P0\n\n$", ["c00", "c01"]),
            (r"P1\n\n$", ["c10", "c11"]),
            (r"P2\n\n$", ["c20", "c21"]),
            (r"c\d\d\n\n$", "Answer: 1"),
        ]
    )


@pytest.mark.parametrize(
    "aggregation, kept",
    [("last", {"c10", "c11", "c21"}), ("min", {"c01", "c20", "c21"}), ("product", {"c00", "c01", "c21"})],
)
def test_beam_keeps_top_n_over_m_by_aggregation(aggregation, kept):
    engine = beam_engine()
    verifier = ScriptedVerifier(list(BEAM_SCORES.items()))
    result = search("beam_search", engine, verifier, n=6, width=2, max_rounds=3, max_tokens=32, aggregation=aggregation)
    tree = result.context.trees[0]
    assert {n.parent.text for n in tree.nodes if n.depth == 2} == {"P0", "P1", "P2"}  # round 1 kept the top 3
    assert {n.parent.text for n in tree.nodes if n.depth == 3} == kept
    assert all(n.is_final for n in tree.nodes if n.depth == 3)
    assert sum(n.selected for n in tree.nodes) == 1
    assert len(engine.calls) == result.context.rounds == 3  # one engine call per round
    assert len(verifier.calls) == 3


def test_beam_one_call_per_round_across_questions():
    engine = beam_engine()
    verifier = ScriptedVerifier(list(BEAM_SCORES.items()))
    result = search("beam_search", engine, verifier, n_questions=3, n=6, width=2, max_rounds=3, max_tokens=32)
    assert result.context.rounds == 3 and len(engine.calls) == 3
    assert {r.prompt.split("\n")[0] for r in engine.calls[1]} == {"Q: What is 0?", "Q: What is 1?", "Q: What is 2?"}
    for call in engine.calls:  # a question's requests go in text order: its tree depth first, fewest slot switches
        keys = [(r.affinity, r.prompt) for r in call]
        assert keys == sorted(keys)
    # children extend their parent's prompt: the prefix cache serves all but the new step
    for node in result.context.trees[1].nodes:
        if node.depth >= 2:
            assert node.prompt.startswith(node.parent.prompt + node.parent.text)
            assert node.cached_prompt_tokens >= len(node.parent.prompt)


# ---- lookahead scores the END of the rollout ------------------------------------------------------------------
def test_lookahead_scores_the_rolled_out_text_and_keeps_the_step():
    def step(prompt, params):
        if params.temperature == 0:  # the greedy rollout
            return "A-bad-end" if prompt.endswith("A\n\n") else "B-good-end"
        return "Answer: 1" if re.search(r"[AB]\n\n$", prompt) else ["A", "B"]

    engine = ScriptedEngine([(r".", step)])
    verifier = ScriptedVerifier([("A", 0.9), ("B", 0.1), ("A-bad-end", 0.1), ("B-good-end", 0.9)])
    result = search("lookahead", engine, verifier, n=2, width=2, lookahead=1, max_rounds=2, max_tokens=32)
    nodes = nodes_by_text(result)
    assert nodes["A"].score == pytest.approx(0.1) and nodes["B"].score == pytest.approx(0.9)
    first_round = verifier.calls[0]
    assert sorted(r.steps[-1] for r in first_round) == ["A-bad-end", "B-good-end"]  # not "A" / "B"
    assert nodes["A-bad-end"].kind == "rollout" and nodes["A-bad-end"].parent is nodes["A"]
    round2 = [n for n in result.context.trees[0].nodes if n.depth == 2 and n.kind == "step"]
    assert {n.parent.text for n in round2} == {"B"}  # the beam kept B, the candidate's step, not the rollout
    assert all("-end" not in n.prompt for n in round2)


# ---- revisions keep at most 4 attempts in context --------------------------------------------------------------
def test_revisions_keep_at_most_four_attempts():
    engine = ScriptedEngine([(r".", [f"Answer: {i}" for i in range(1, 7)])])
    result = search("sequential_revisions", engine, None, chains=1, chain_length=6, select="majority", max_tokens=32)
    prompts = [c[0].prompt for c in engine.calls]
    assert [len(re.findall(r"Attempt \d+:", p)) for p in prompts] == [0, 1, 2, 3, 4, 4]
    last = prompts[-1]
    assert "Answer: 1" not in last and all(f"Answer: {i}" in last for i in range(2, 6))
    chain = [n for n in result.context.trees[0].nodes if n.kind == "revision"]
    assert [n.depth for n in chain] == [1, 2, 3, 4, 5, 6] and all(n.is_final for n in chain)
    assert sum(n.selected for n in chain) == 1


def test_revisions_pick_by_verifier_within_then_across_chains():
    engine = ScriptedEngine([(r".", ["Answer: 1", "Answer: 2", "Answer: 3", "Answer: 4"])])
    verifier = ScriptedVerifier([("Answer: 1", 0.2), ("Answer: 2", 0.3), ("Answer: 3", 0.9), ("Answer: 4", 0.1)])
    result = search("sequential_revisions", engine, verifier, chains=2, chain_length=2, max_tokens=32)
    assert result.context.trees[0].selected.answer == "3"


# ---- particle filtering resamples by weight --------------------------------------------------------------------
def test_particle_filtering_resamples_by_weight():
    engine = ScriptedEngine(
        [(r"A:$", ["good", "bad", "bad", "bad"]), (r"good\n\n$", "Answer: 1"), (r"bad\n\n$", "Answer: 2")]
    )
    verifier = ScriptedVerifier([("good", 0.9), ("bad", 0.1)])
    result = search("particle_filtering", engine, verifier, n=4, softmax_temperature=0.01, max_rounds=3, max_tokens=32)
    tree = result.context.trees[0]
    round2 = [n for n in tree.nodes if n.depth == 2]
    assert len(round2) == 4 and {n.parent.text for n in round2} == {"good"}
    assert tree.selected.answer == "1"


def test_particle_filtering_is_seeded():
    def run():
        engine = ScriptedEngine(
            [(r"A:$", ["s1", "s2", "s3", "s4"]), (r"s\d\n\n$", ["Answer: 1", "t"]), (r"t\n\n$", "Answer: 2")]
        )
        verifier = ScriptedVerifier([("s1", 0.6), ("s2", 0.5), ("s3", 0.4), ("s4", 0.3)])
        r = search("particle_filtering", engine, verifier, n=4, softmax_temperature=0.5, max_rounds=4, max_tokens=32)
        return [(n.node_id, n.parent.node_id if n.parent else -1, n.text) for n in r.context.trees[0].nodes]

    assert run() == run()


# ---- first finish, weighted best-of-N, majority -----------------------------------------------------------------
def test_first_finish_keeps_the_first_to_finish():
    engine = ScriptedEngine([(r".", ["Answer: 100 after a long detour", "x" * 64, "Answer: 7", "Answer: 8"])])
    result = search("first_finish", engine, None, n=4, max_tokens=40)
    tree = result.context.trees[0]
    assert tree.selected.text == "Answer: 7"  # fewest tokens; "Answer: 8" ties and loses on index
    assert len(tree.finals) == 4 and any(f.finish_reason == "length" for f in tree.finals)


def test_weighted_best_of_n_sums_scores_per_answer():
    texts = ["Answer: 1", "Answer: 2", "Answer:  2", "Answer: 3"]
    verifier = ScriptedVerifier([("Answer: 1", 0.9), (r"Answer:\s+2", 0.5), ("Answer: 3", 0.3)])
    weighted = search("weighted_best_of_n", ScriptedEngine([(r".", texts)]), verifier, n=4, max_tokens=32)
    assert weighted.context.trees[0].selected.answer == "2"  # 0.5 + 0.5 > 0.9
    best = search("best_of_n", ScriptedEngine([(r".", texts)]), verifier, n=4, max_tokens=32)
    assert best.context.trees[0].selected.answer == "1"
    majority = search("majority", ScriptedEngine([(r".", texts)]), None, n=4, max_tokens=32)
    assert majority.context.trees[0].selected.answer == "2"


def test_budget_forcing_appends_wait_then_forces_an_answer():
    def reply(prompt, params):
        return "let me think" if not prompt.endswith("Answer:") else " 1"

    engine = ScriptedEngine([(r".", reply)])
    result = search("budget_forcing", engine, None, n=1, thinking_tokens=30, extensions=2)
    prompts = [c[0].prompt for c in engine.calls]
    assert prompts[1].endswith("let me think\nWait") and prompts[2].endswith("let me think\nWait")
    assert prompts[-1].endswith("\n\nAnswer:")  # 36 thinking tokens > the cap: forced to answer
    assert result.context.trees[0].selected.answer is not None


def test_rebase_allocates_width_by_softmax_of_reward():
    assert allocate([0.9, 0.5, 0.1], 8, 0.2) == [7, 1, 0]
    assert sum(allocate([0.3, 0.3, 0.3], 7, 1.0)) == 7
    assert allocate([0.5], 0, 1.0) == [0]


def test_dvts_subtrees_stay_independent():
    engine = ScriptedEngine([(r"A:$", ["a", "b", "c", "d"]), (r"[abcd]\n\n$", ["e", "f"]), (r"[ef]\n\n$", "Answer: 1")])
    verifier = ScriptedVerifier([("a", 0.9), ("b", 0.8), ("c", 0.2), ("d", 0.1), ("e", 0.5), ("f", 0.4)])
    result = search("dvts", engine, verifier, n=4, width=2, max_rounds=3, max_tokens=32)
    tree = result.context.trees[0]
    # beam search would keep a and b; each DVTS subtree ({a,b}, {c,d}) keeps its own best
    assert {n.parent.text for n in tree.nodes if n.depth == 2} == {"a", "c"}


# ---- budget discipline -------------------------------------------------------------------------------------------
def generic_step(prompt, params):
    depth = prompt.count("\n\n")
    salt = (params.seed or 0) % 5
    if depth >= 3 or salt == 0:
        return f"Answer: {salt % 3}"
    return f"step {depth} {salt} " + "x" * 40  # long: runs into max_tokens


CONFIGS = {
    "best_of_n": {"n": 64, "max_tokens": 64},
    "weighted_best_of_n": {"n": 64, "max_tokens": 64},
    "majority": {"n": 64, "max_tokens": 64},
    "first_finish": {"n": 64, "max_tokens": 64},
    "beam_search": {"n": 16, "width": 4, "max_rounds": 6, "max_tokens": 24},
    "lookahead": {"n": 16, "width": 4, "max_rounds": 6, "max_tokens": 24, "lookahead": 2},
    "dvts": {"n": 16, "width": 4, "max_rounds": 6, "max_tokens": 24},
    "rebase": {"n": 16, "max_rounds": 6, "max_tokens": 24},
    "particle_filtering": {"n": 16, "max_rounds": 6, "max_tokens": 24},
    "sequential_revisions": {"chains": 4, "chain_length": 8, "max_tokens": 64},
    "budget_forcing": {"n": 8, "thinking_tokens": 64, "extensions": 3, "select": "weighted"},
}


def test_configs_cover_every_strategy():
    assert set(CONFIGS) == set(STRATEGIES)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("units", [4, 8, 16, 32, 64])
def test_ledger_total_within_budget(name, units):
    task = FakeTask(2)
    prompt_tokens = len("Q: What is 0?\nA:")
    budget = units * float(sampling_flops(GEN_ARCH, prompt_tokens, 64, 1))
    engine = ScriptedEngine([(r".", generic_step)])
    verifier = ScriptedVerifier(fn=lambda s: 0.1 + (len(s) % 7) / 10)
    result = run_search(
        name, task.questions(), task, FAKE_MODEL, engine, verifier, config=CONFIGS[name], budget_flops=budget
    )
    for ledger, tree in zip(result.ledgers, result.context.trees):
        assert ledger.total <= budget, (name, units, ledger.total / budget)
        assert ledger.total > 0
        assert ledger.generator_flops == pytest.approx(sum(n.generator_flops for n in tree.nodes))
        assert ledger.verifier_flops == pytest.approx(sum(n.verifier_flops for n in tree.nodes))
        n_cap = CONFIGS[name].get("n", 0) or CONFIGS[name]["chains"] * CONFIGS[name]["chain_length"]
        assert len({id(f) for f in tree.finals}) <= max(n_cap, 1)
        assert sum(n.selected for n in tree.nodes) <= 1
    if name in ("beam_search", "dvts", "rebase", "particle_filtering", "sequential_revisions", "budget_forcing"):
        assert len(engine.calls) == result.context.rounds  # calls per round == 1
    if name == "lookahead":
        assert len(engine.calls) <= 3 * result.context.rounds


def test_small_budget_cuts_width_not_overspends():
    task = FakeTask(1)
    unit = float(sampling_flops(GEN_ARCH, len("Q: What is 0?\nA:"), 64, 1))
    engine = ScriptedEngine([(r".", "x" * 100)])
    result = run_search(
        "majority",
        task.questions(),
        task,
        FAKE_MODEL,
        engine,
        None,
        config={"n": 64, "max_tokens": 64},
        budget_flops=4 * unit,
    )
    assert len(result.context.trees[0].finals) == 4  # exactly the samples four samples' budget buys
    assert result.ledgers[0].total <= 4 * unit


def test_nodes_table_has_whole_trees(tmp_path):
    from store import Store

    store = Store.open(tmp_path / "store")
    task = FakeTask(2)
    result = run_search(
        "beam_search",
        task.questions(),
        task,
        FAKE_MODEL,
        beam_engine(),
        ScriptedVerifier(list(BEAM_SCORES.items())),
        config={"n": 6, "width": 2, "max_rounds": 3, "max_tokens": 32},
        store=store,
        run_id="r1",
    )
    df = store.query("SELECT * FROM nodes WHERE run_id = 'r1'")
    assert len(df) == result.nodes.num_rows and set(df["question_id"]) == {"q0", "q1"}
    for _qid, g in df.groupby("question_id"):
        ids = dict(zip(g["node_id"], g["parent_id"]))
        for nid in ids:  # every node reaches the root
            while ids[nid] != -1:
                nid = ids[nid]
        assert g["selected"].sum() == 1 and g["is_final"].sum() >= 1


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_question_searches_alike_whichever_questions_share_its_batch(name):
    """What makes a search resumable and shardable by question (a replica's shard, a resumed question): the
    question's tree, seeds and charges are those it gets in the whole set. Not compared: the cache the engine
    reports, which depends on what else it has just processed."""
    task = FakeTask(3)
    budget = 16 * float(sampling_flops(GEN_ARCH, len("Q: What is 0?\nA:"), 64, 1))

    def tree(questions, qid):
        engine = ScriptedEngine([(r".", generic_step)])
        verifier = ScriptedVerifier(fn=lambda s: 0.1 + (len(s) % 7) / 10)
        result = run_search(
            name, questions, task, FAKE_MODEL, engine, verifier, config=CONFIGS[name], budget_flops=budget
        )
        nodes = result.nodes.drop_columns(["cached_prompt_tokens"]).to_pylist()
        return [n for n in nodes if n["question_id"] == qid]

    everything = task.questions()
    for alone in ([everything[2]], [everything[1], everything[2]]):
        assert tree(alone, "q2") == tree(everything, "q2")
    assert len(tree(everything, "q2")) > 1


# ---- the ledger is the idealised prefix cache, whatever the engine reports ---------------------------------------
class MisreportingEngine(ScriptedEngine):
    """Reports adversarial cached_prompt_tokens (as llama.cpp's slot scheduling may): 0, the whole prompt, or random."""

    def __init__(self, rules, mode, seed=0):
        super().__init__(rules)
        self.mode, self.rng = mode, __import__("random").Random(seed)

    def generate(self, requests, on_complete=None, should_stop=None):
        import dataclasses

        out = super().generate(requests, on_complete, should_stop)
        pick = {
            "zero": lambda c: 0,
            "all": lambda c: c.prompt_tokens,
            "random": lambda c: self.rng.randint(0, c.prompt_tokens),
        }[self.mode]
        return [[dataclasses.replace(c, cached_prompt_tokens=pick(c)) for c in comps] for comps in out]


def ledger_run(name, units, mode):
    task = FakeTask(2)
    budget = units * float(sampling_flops(GEN_ARCH, len("Q: What is 0?\nA:"), 64, 1))
    engine = MisreportingEngine([(r".", generic_step)], mode) if mode else ScriptedEngine([(r".", generic_step)])
    verifier = ScriptedVerifier(fn=lambda s: 0.1 + (len(s) % 7) / 10)
    result = run_search(
        name, task.questions(), task, FAKE_MODEL, engine, verifier, config=CONFIGS[name], budget_flops=budget
    )
    return budget, result


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("units", [4, 8, 16, 32, 64])
def test_budget_holds_and_ledger_ignores_reported_cache(name, units):
    budget, ideal = ledger_run(name, units, None)
    rows = lambda r: [
        (n.node_id, n.text, n.generator_flops, n.verifier_flops) for t in r.context.trees for n in t.nodes
    ]  # noqa: E731
    for mode in ("zero", "random", "all"):
        _, res = ledger_run(name, units, mode)
        for ledger in res.ledgers:
            assert 0 < ledger.total <= budget, (name, units, mode, ledger.total / budget)
        # identical ledger node by node: the charge never reads the engine's cache report
        assert rows(res) == rows(ideal), (name, units, mode)
        assert [lg.total for lg in res.ledgers] == [lg.total for lg in ideal.ledgers]
    # the report is still stored on the nodes (the bench's prefix-cache hit rate)
    _, zero = ledger_run(name, units, "zero")
    assert all(n.cached_prompt_tokens == 0 for t in zero.context.trees for n in t.nodes)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("mode", ["zero", "random"])
def test_estimate_bounds_every_round_charge(name, mode, monkeypatch):
    """A round's estimate (taken on the trimmed round) is >= what the round then costs, per question."""
    from backend.strategies.context import SearchContext

    orig_trim = SearchContext.trim
    rounds = []  # (estimate per question, ledger totals before the round)

    def trim(self, exps):
        out = orig_trim(self, exps)
        rounds.append(
            (
                {qi: self.estimate([e for e in out if e.qi == qi]) for qi in range(len(self.ledgers))},
                [lg.total for lg in self.ledgers],
            )
        )
        return out

    monkeypatch.setattr(SearchContext, "trim", trim)
    budget, result = ledger_run(name, 64, mode)
    totals = [[lg.total for lg in result.ledgers]]
    ends = [before for _, before in rounds[1:]] + totals
    for (est, before), after in zip(rounds, ends):
        for qi, e in est.items():
            assert after[qi] - before[qi] <= e * (1 + 1e-12), (name, qi, after[qi] - before[qi], e)
    assert sum(1 for est, _ in rounds if any(est.values())) >= 1


# ---- self-verification on the generator's own engine: shared ledger cache, eager judging -------------------------
def judge_reply(prompt, params):
    s = 0.15 + (len(prompt) % 7) / 10
    return ScriptedReply("Yes", {"Yes": math.log(s), "No": math.log(1 - s)})


def self_verified_run(name, units, eager, monkeypatch):
    from backend.strategies.context import SearchContext
    from backend.verifiers.self_verify import SelfVerifier

    monkeypatch.setattr(SearchContext, "eager_verification", eager)
    task = FakeTask(2)
    budget = units * float(sampling_flops(GEN_ARCH, len("Q: What is 0?\nA:"), 64, 1))
    engine = ScriptedEngine([(r"Is the last step correct", judge_reply), (r".", generic_step)])
    verifier = SelfVerifier(engine, FAKE_MODEL, task)
    result = run_search(
        name, task.questions(), task, FAKE_MODEL, engine, verifier, config=CONFIGS[name], budget_flops=budget
    )
    return budget, result


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("units", [4, 8, 16, 32, 64])
def test_self_verification_stays_in_budget_and_eager_judging_changes_nothing(name, units, monkeypatch):
    budget, eager = self_verified_run(name, units, True, monkeypatch)
    _, batched = self_verified_run(name, units, False, monkeypatch)
    rows = lambda r: [
        (n.node_id, n.text, n.score, n.generator_flops, n.verifier_flops, n.selected)
        for t in r.context.trees
        for n in t.nodes
    ]  # noqa: E731
    assert rows(eager) == rows(batched)
    for ledger, tree in zip(eager.ledgers, eager.context.trees):
        assert ledger.total <= budget, (name, units, ledger.total / budget)
        assert ledger.total > 0 or units == 4  # lookahead's k + 1 steps and judge can cost more than 4 samples
        assert ledger.verifier_flops == pytest.approx(sum(n.verifier_flops for n in tree.nodes))
    if name in (
        "beam_search",
        "dvts",
        "rebase",
        "particle_filtering",
        "best_of_n",
        "weighted_best_of_n",
        "sequential_revisions",
    ):
        assert eager.context.prescored_hits > 0 and batched.context.prescored_hits == 0
    # the judge reads the node's own text after the generator's: the shared cache charges only the judge turn
    if name == "beam_search" and units == 64:
        judged = [n for t in eager.context.trees for n in t.nodes if n.kind == "step" and n.score is not None]
        turn = eager.context.verifier.turn_bound()
        assert judged and sum(lg.verifier_tokens for lg in eager.ledgers) <= len(judged) * (turn + 1)


def test_known_prompt_tokens_price_the_first_round_exactly_where_the_byte_bound_cannot_afford_it():
    """The pool already measured each root prompt; without that count its UTF-8 length bounds it, and a prompt of
    two-byte characters then looks twice as long: a budget for one honest round buys nothing."""
    from backend.ledger import decode_flops, prefill_flops
    from backend.prompting import build_prompt
    from backend.tasks.base import Question

    task = FakeTask(1)
    task._qs = [Question("q0", "fake", "fake", "é" * 200 + " ?", "1")]
    prompt = build_prompt(FAKE_MODEL, task, task._qs[0])
    tokens = len(prompt)  # the scripted engine's tokens are characters
    assert len(prompt.encode()) > tokens + 150
    engine = ScriptedEngine([], default="Answer: 1")
    one_round = float(prefill_flops(engine.arch, tokens)) + 2 * float(decode_flops(engine.arch, tokens, 16))
    budget = one_round * 1.2
    cfg = {"n": 2, "width": 2, "max_tokens": 16, "max_rounds": 1}
    blind = run_search(
        "beam_search",
        task._qs,
        task,
        FAKE_MODEL,
        ScriptedEngine([], default="Answer: 1"),
        ScriptedVerifier(),
        config=cfg,
        budget_flops=budget,
    )
    known = run_search(
        "beam_search",
        task._qs,
        task,
        FAKE_MODEL,
        engine,
        ScriptedVerifier(),
        config=cfg,
        budget_flops=budget,
        prompt_tokens={"q0": tokens},
    )
    assert len(blind.context.trees[0].nodes) == 1  # root only: priced out by the byte bound
    assert len(known.context.trees[0].nodes) > 1 and known.ledgers[0].total <= budget


def test_a_nodes_generator_flops_is_recomputed_from_its_stored_tokens(tmp_path):
    """Every generated node stores the cached tokens its ledger charged: generator_flops is backend.pricing's pass of
    (prompt_tokens, ledger_cached_tokens, completion_tokens), the formula an audit recomputes with its own SQL."""
    import numpy as np

    from backend.pricing import pass_flops
    from backend.strategies.runner import nodes_table, run_search

    task = FakeTask(2)
    engine = ScriptedEngine([(r".", "step one\n\nAnswer: 1")])
    result = run_search(
        "beam_search",
        task.questions(),
        task,
        FAKE_MODEL,
        engine,
        ScriptedVerifier(list(BEAM_SCORES.items())),
        config=dict(n=2, width=2, max_tokens=16, max_rounds=2),
        budget_flops=None,
        seed=0,
    )
    table = nodes_table("r", "scripted", "beam_search", {}, result.context).to_pandas()
    gen = table[table["kind"] != "root"]
    assert (
        len(gen)
        and gen["ledger_cached_tokens"].notna().all()
        and table.loc[table["kind"] == "root", "ledger_cached_tokens"].isna().all()
    )
    expected = pass_flops(GEN_ARCH, gen["prompt_tokens"], gen["ledger_cached_tokens"], gen["completion_tokens"])
    np.testing.assert_allclose(gen["generator_flops"], expected, rtol=1e-12)
    assert (gen["ledger_cached_tokens"] > 0).any()  # siblings and children find their prompt processed


def test_a_nodes_verifier_flops_is_the_sum_of_its_stored_passes(tmp_path):
    """A node may be judged several times (each new step, or an eager judge charged to the root): it stores every
    pass's (prompt, cached, completion) tokens, and verifier_flops is the sum of their passes, not a pass of their
    sums (the span depends on positions)."""
    import numpy as np

    from backend.pricing import pass_flops
    from backend.strategies.runner import nodes_table, run_search

    task = FakeTask(2)
    engine = ScriptedEngine([(r".", "step one\n\nstep two\n\nAnswer: 1")])
    verifier = ScriptedVerifier(list(BEAM_SCORES.items()))
    result = run_search(
        "best_of_n",
        task.questions(),
        task,
        FAKE_MODEL,
        engine,
        verifier,
        config=dict(n=2, max_tokens=16, aggregation="min"),
        budget_flops=None,
        seed=0,
    )
    table = nodes_table("r", "scripted", "beam_search", {}, result.context).to_pandas()
    cols = [f"verifier_pass_{c}_tokens" for c in ("prompt", "cached", "completion")]
    judged = table[table["verifier_flops"] > 0]
    assert len(judged)
    for _, row in table.iterrows():
        p, c, d = (np.asarray(row[k], dtype=np.float64) for k in cols)
        assert len(p) == len(c) == len(d)
        expected = float(np.sum(pass_flops(verifier.arch, p, c, d))) if len(p) else 0.0
        assert row["verifier_flops"] == pytest.approx(expected, rel=1e-12, abs=0)
    assert (judged[cols[0]].map(len) >= 2).all()  # every step of a whole sample judged: several passes per node
