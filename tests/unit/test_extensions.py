"""Every extension point is a typed plug-in: a toy task suite, engine, verifier and strategy, one registration each
through the public registries (fakes, not patches), are found by the spec check, the CLI listings and README's
tables (the Run form: tests/ui), and every registered entry of each kind passes the same contract (conformance)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from backend.cli import main
from backend.config import parse_spec
from backend.docs import TABLES
from backend.engines import ENGINES, EngineEntry, create_engine, engine_options, register_engine
from backend.errors import SpecError
from backend.execution.sampling import prepare_run
from backend.options import KindOptions, Options
from backend.registry import Entry, Registry
from backend.strategies import STRATEGIES, StrategyEntry, StrategyOptions, register_strategy, validate_config
from backend.strategies.runner import run_search
from backend.tasks import TASKS, TaskEntry, create_task, register_task, task_options
from backend.verifiers import VERIFIERS, ScoreRequest, VerifierEntry, create_verifier, register_verifier
from tests.fakes import FAKE_MODEL, GEN_ARCH, FakeTask, ScriptedEngine, ScriptedVerifier


class ToySuite(KindOptions):
    kind: Literal["toy"] = "toy"
    n: int = Field(2, ge=1, le=10, description="questions")


class ToyEngineOptions(KindOptions):
    kind: Literal["toy_engine"] = "toy_engine"
    reply: str = Field("Answer: 1", description="what every completion says")


class ToyVerifierOptions(Options):
    score: float = Field(0.5, ge=0, le=1, description="the score of every step")


class ToyStrategyOptions(StrategyOptions):
    n: int = Field(2, ge=1, le=8, description="samples drawn, the last one kept")
    pick: Literal["last", "first"] = Field("last", description="which sample is kept")


class KeepOne:
    """A toy strategy: n whole samples per question, the first or the last kept."""

    def run(self, ctx, cfg: dict) -> None:
        from backend.strategies.best_of_n import sample_pool

        sample_pool(ctx, {**cfg, "temperature": 0.0, "max_tokens": 16}, scored=False)
        for tree in ctx.trees:
            tree.finals[-1 if cfg["pick"] == "last" else 0].selected = True


TOY_TASK = TaskEntry("toy", "a fake suite of n questions", ToySuite, lambda o, seed: FakeTask(o.n), "exact answer")
TOY_ENGINE = EngineEntry(
    "toy_engine",
    "a scripted engine",
    ToyEngineOptions,
    lambda model, o: ScriptedEngine([], default=o.reply),
    loads_hub_ids=True,  # its model is a name, not a file
)
TOY_VERIFIER = VerifierEntry(
    "toy_verifier", "a constant judge", ToyVerifierOptions, lambda o, **_: ScriptedVerifier(default=o.score)
)
TOY_STRATEGY = StrategyEntry(
    "toy_strategy", "keeps one of n samples", ToyStrategyOptions, KeepOne, needs_verifier=False
)
TOYS = ((TASKS, TOY_TASK), (ENGINES, TOY_ENGINE), (VERIFIERS, TOY_VERIFIER), (STRATEGIES, TOY_STRATEGY))


@pytest.fixture
def toys():
    """The four toys registered for one test, one registration each, and gone afterwards (registries are
    process-wide)."""
    register_task(TOY_TASK), register_engine(TOY_ENGINE), register_verifier(TOY_VERIFIER)
    register_strategy(TOY_STRATEGY)
    yield
    for registry, entry in TOYS:
        registry.unregister(entry.name)


def _spec(**kw):
    return dict(name="toy", models=["m"], task=dict(kind="toy", n=3), samples_per_question=1) | kw


def test_a_registered_task_engine_and_verifier_pass_the_spec_check(toys):
    spec = parse_spec(
        _spec(engine=dict(kind="toy_engine", reply="Answer: 2"), verifiers=[dict(name="toy_verifier", score=0.9)])
    )
    assert isinstance(spec.task, ToySuite) and spec.task.n == 3 and spec.engine.reply == "Answer: 2"
    assert len(create_task(spec.task).questions()) == 3
    assert create_engine(FAKE_MODEL, spec.engine).generate([]) == []
    assert spec.model_dump(mode="json")["task"] == {"kind": "toy", "n": 3}  # the run id sees every option
    with pytest.raises(SpecError, match=r"^task\.n: Input should be less than or equal to 10 \(got 11\)"):
        parse_spec(_spec(task=dict(kind="toy", n=11)))
    with pytest.raises(SpecError, match=r"^engine\.voice: unknown key; allowed: kind, reply"):
        parse_spec(_spec(engine=dict(kind="toy_engine", voice="x")))
    from backend.verifiers import verifier_options

    with pytest.raises(SpecError, match=r"^verifiers\[0\]\.score: Input should be less than or equal to 1"):
        verifier_options("toy_verifier", {"score": 2}, "verifiers[0]")


def _searches(*strategies: dict):
    """The searches of a toy spec as the run prepares them (the check of each strategy's config)."""
    spec = _spec(models=["org/toy-model"], engine=dict(kind="toy_engine"), strategies=list(strategies))
    return prepare_run(parse_spec(spec)).searches


def test_a_registered_strategy_passes_the_spec_check_and_runs(toys):
    [search] = _searches(dict(name="toy_strategy", config=dict(n=3)))
    assert (search.strategy, search.config, search.verifier) == ("toy_strategy", {"n": 3, "pick": "last"}, None)
    for config, message in (
        ({"n": 9}, r"^strategies\[0\]\.config\.n: 9 is out of range; allowed: int in \[1, 8\]$"),
        ({"n": "3"}, r"^strategies\[0\]\.config\.n: must be int, got '3'; allowed: int in \[1, 8\]$"),
        ({"pick": "middle"}, r"^strategies\[0\]\.config\.pick: 'middle' is not allowed; allowed: 'last', 'first'$"),
        ({"size": 3}, r"^strategies\[0\]\.config\.size: not a parameter of toy_strategy; allowed: n, pick$"),
    ):
        with pytest.raises(SpecError, match=message):
            _searches(dict(name="toy_strategy", config=config))
    engine = ScriptedEngine([(r"Q: What is 0", "Answer: 0"), (r"Q: What is 1", "Answer: 1")], default="Answer: 5")
    task = FakeTask(2)
    result = run_search("toy_strategy", task.questions(), task, FAKE_MODEL, engine, config={"pick": "first"})
    assert result.config == {"n": 2, "pick": "first"} and all(n.selected for n in result.selected)


def test_the_spec_check_forgets_a_strategy_when_it_is_gone():
    with pytest.raises(SpecError, match=r"^strategy\.name: unknown strategy 'toy_strategy'; allowed: beam_search,"):
        validate_config("toy_strategy")


def test_the_spec_check_forgets_them_when_they_are_gone():
    with pytest.raises(
        SpecError, match=r"task\.kind: unknown task kind 'toy'; allowed: humaneval, math_jsonl, reasoning_gym"
    ):
        parse_spec(_spec())


def test_the_cli_lists_them(toys, capsys):
    main(["tasks"])
    assert (
        "  toy: a fake suite of n questions (graded by exact answer)\n    n = 2  questions" in capsys.readouterr().out
    )
    main(["engines"])
    assert "  toy_engine: a scripted engine" in capsys.readouterr().out
    main(["verifiers"])
    assert "  toy_verifier: a constant judge\n    score = 0.5  the score of every step" in capsys.readouterr().out
    main(["strategies"])
    out = capsys.readouterr().out
    assert (
        "toy_strategy: keeps one of n samples (no verifier needed)\n"
        "  n = 2  [int in [1, 8]]  samples drawn, the last one kept\n"
        "  pick = 'last'  ['last', 'first']  which sample is kept\n"
    ) in out


def test_readme_tables_list_them(toys):
    tables = {name: table() for name, table in TABLES.items()}
    assert "| `toy` | a fake suite of n questions | `n`=2 | exact answer |" in tables["tasks"]
    assert "| `toy_engine` | a scripted engine | `reply`='Answer: 1' |" in tables["engines"]
    assert "| `toy_verifier` | a constant judge | `score`=0.5 | — |" in tables["verifiers"]
    assert "| `toy_strategy` | keeps one of n samples | `n`=2, `pick`='last' | optional |" in tables["strategies"]


# ---- one registry shape -------------------------------------------------------------------------------------------
def test_a_name_registers_once_per_kind(toys):
    for registry, entry in TOYS:
        with pytest.raises(ValueError, match=f"^{registry.what} '{entry.name}' is registered already$"):
            registry.register(entry)
        assert registry[entry.name] is entry  # the first registration stands


def test_an_entry_chosen_by_kind_pins_it_in_its_options():
    registry: Registry[Entry] = Registry("engine", by_kind=True)
    with pytest.raises(ValueError, match=r"engine 'other': its options need `kind: Literal\['other'\] = 'other'`"):
        registry.register(Entry("other", "a toy", ToyEngineOptions, lambda model, o: None))
    assert "other" not in registry


def test_every_kind_is_one_registry_of_one_entry_shape():
    for registry in (TASKS, ENGINES, VERIFIERS, STRATEGIES):
        assert isinstance(registry, Registry) and registry
        for name, entry in registry.items():
            assert isinstance(entry, Entry) and entry.name == name and entry.help, name
            assert issubclass(entry.options, Options) and entry.options.model_config["extra"] == "forbid", name
            described = all(f.description for k, f in entry.options.model_fields.items() if k != "kind")
            assert described, name  # every option has help: the form, the listing and README show it


# ---- conformance: the same contract for every registered entry of a kind ---------------------------------------
TASK_EXAMPLES = {  # the smallest suite of each built-in, for the contract
    "reasoning_gym": {"kind": "reasoning_gym", "datasets": [{"name": "basic_arithmetic", "size": 2}]},
    "humaneval": {"kind": "humaneval", "size": 2},
    "math_jsonl": {"kind": "math_jsonl", "path": "examples/math_sample.jsonl", "size": 2},
}


def test_every_task_has_an_example_here():
    assert set(TASK_EXAMPLES) == set(TASKS)


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_task_contract(kind):
    entry = TASKS[kind]
    assert entry.options.model_fields["kind"].default == kind and entry.help
    options = task_options(TASK_EXAMPLES[kind])
    task = create_task(options, seed=0)
    questions = task.questions()
    assert questions and len({q.question_id for q in questions}) == len(questions)
    q = questions[0]
    assert task.user_message(q).strip() and task.few_shot_format(q, None).strip() and task.system_prompt
    assert not task.grade(q, "I do not know.").correct  # no answer is never correct
    with pytest.raises(
        SpecError, match=rf"^task\.bogus: unknown key; allowed: {', '.join(entry.options.model_fields)}"
    ):
        task_options({**TASK_EXAMPLES[kind], "bogus": 1})


@pytest.mark.parametrize("kind", sorted(ENGINES))
def test_engine_contract(kind):
    """Options: defaults where the engine has them, the kind pinned, unknown keys refused. Generation itself is
    exercised per engine on real models (tests/integration, tests/gpu)."""
    entry = ENGINES[kind]
    assert entry.options.model_fields["kind"].default == kind and entry.help
    required = [n for n, f in entry.options.model_fields.items() if f.is_required()]
    example = {"kind": kind, **{n: "http://127.0.0.1:1/v1" for n in required}}
    assert engine_options(example).kind == kind
    with pytest.raises(SpecError, match=r"^engine\.bogus: unknown key"):
        engine_options({**example, "bogus": 1})


VERIFIER_EXAMPLES = {"prm_vllm": {"model": "org/prm"}}


@pytest.mark.parametrize("name", sorted(VERIFIERS))
def test_verifier_contract(name):
    """Scores in [0, 1], one per step asked for, each pass's usage reported; charged to the ledger at the
    verifier's own size (nothing for the free oracle)."""
    from backend.ledger import Ledger
    from backend.verifiers import charge

    class Scorer:  # stands in for vLLM's reward model where a verifier needs one
        arch = GEN_ARCH

        def score(self, prompts):
            return [[0.25] * 3 for _ in prompts]

    entry = VERIFIERS[name]
    if entry.needs_gpu and name not in VERIFIER_EXAMPLES:
        pytest.fail(f"{name} needs a CPU-side example here")
    task = FakeTask(1)
    engine = ScriptedEngine([], default="Yes")
    v = create_verifier(name, VERIFIER_EXAMPLES.get(name), task=task, engine=engine, model=FAKE_MODEL, scorer=Scorer())
    [r] = v.score([ScoreRequest(task.questions()[0], ("x = 1", "Answer: 1"), first=0)])
    assert len(r.scores) == 2 and all(0.0 <= s <= 1.0 for s in r.scores)
    spent = charge(Ledger(), v, r)
    assert spent == 0.0 if v.arch is None else spent > 0
    assert entry.needs_ground_truth == (name == "oracle")
