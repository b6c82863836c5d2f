"""A run's analysis after its pool is sampled: every listed verifier scores the pool, then every strategy runs at
every budget (each point of a ratio sweep too) and stores its trees.

Completeness is per question: a question is done for a verifier when all its samples carry that verifier's score,
and for a search when the search's record holds nodes for it (a stored tree always has its root). So a re-run, a
worker that takes over a run, or an engine replica given a shard of questions (backend/execution/fanout.py) does only the
questions still missing — and does them exactly as a single engine running every question would, because a
question's requests are seeded by what identifies them within that question (strategies/context.py), never by
the other questions of the batch."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable

from backend.engines.base import Engine
from backend.execution.sampling import PreparedRun, PreparedSearch, model_arch
from backend.execution.scoring import score_pool
from backend.models.registry import ResolvedModel
from backend.pricing import budget_flops, distinct_questions, one_sample_flops, prompt_tokens
from backend.strategies import create_strategy, validate_config
from backend.strategies.base import RatioSweep
from backend.strategies.runner import SearchResult, nodes_table, run_search, search_record
from backend.verifiers import create_verifier
from store import Store


def run_prompt_tokens(prepared: PreparedRun, model: ResolvedModel, engine: Engine) -> list[int]:
    """Every distinct question's prompt tokens (the run's order), counted by the model's tokenizer: the same count for every
    question shard of a fanned-out analysis, so every shard prices a budget alike (backend.pricing)."""
    return [
        int(t) for t in prompt_tokens(model, prepared.task, distinct_questions(prepared.questions), engine.count_tokens)
    ]


def _budgets_flops(prepared: PreparedRun, model: ResolvedModel, prompts: list[int]) -> list[float | None]:
    """The spec's budgets in FLOPs per question (backend.pricing: in samples, multiples of the question set's
    "1 sample", one prefill + max_tokens of decode)."""
    if not prepared.spec.budgets:
        return [None]
    spec = prepared.spec
    return list(budget_flops(model_arch(model), spec.budgets, spec.budget_unit, prompts, spec.max_tokens))


def _search_points(
    search: PreparedSearch, budget: float | None, model: ResolvedModel, prompts: list[int]
) -> list[tuple[dict, str | None]]:
    """(config, ratio) of each search to run at one budget: the search itself, or one per ratio of its sweep, the
    attempts the budget affords (one attempt: "1 sample" of the strategy's max_tokens, backend.pricing) split at
    that ratio; without a budget the configured chains × chain_length attempts are split."""
    if not search.ratios:
        return [(search.config, None)]
    strategy = create_strategy(search.strategy)
    assert isinstance(strategy, RatioSweep), f"{search.strategy} has no ratio sweep (_prepare_search refuses ratios)"
    cfg = search.config
    if budget is None:
        attempts = cfg["chains"] * cfg["chain_length"]
    else:
        attempts = int(budget // one_sample_flops(model_arch(model), prompts, cfg["max_tokens"]))
    return [
        (validate_config(search.strategy, strategy.ratio_config(cfg, max(1, attempts), r)), r) for r in search.ratios
    ]


def questions_left(prepared: PreparedRun, store: Store, model_name: str) -> list[str]:
    """The questions (in the run's order) whose verifier scores or searches are not all stored: a cheap check
    before an engine is loaded, and what the analysis is fanned out over."""
    run_id = prepared.run_id
    left: set[str] = set()
    for name in prepared.spec.verifier_names():
        df = store.query(
            """SELECT DISTINCT s.question_id FROM samples s WHERE s.run_id = ? AND s.model = ? AND NOT EXISTS (
                 SELECT 1 FROM scores c WHERE c.run_id = s.run_id AND c.model = s.model
                   AND c.question_id = s.question_id AND c.sample_idx = s.sample_idx AND c.verifier = ?)""",
            [run_id, model_name, name],
        )
        left.update(df["question_id"])
    if prepared.searches:
        expected = sum(s.points_per_budget for s in prepared.searches) * max(1, len(prepared.spec.budgets))
        df = store.query(
            "SELECT question_id, count(DISTINCT (strategy, config)) AS n FROM nodes WHERE run_id = ? AND model = ?"
            " GROUP BY 1",
            [run_id, model_name],
        )
        searched = dict(zip(df["question_id"], df["n"]))
        left.update(q.question_id for q in prepared.questions if searched.get(q.question_id, 0) < expected)
    return [q.question_id for q in prepared.questions if q.question_id in left]


def _searched(store: Store, run_id: str, model_name: str) -> dict[tuple[str, str], set[str]]:
    """{(strategy, record as sorted JSON): the questions it holds nodes for}."""
    df = store.query(
        "SELECT DISTINCT strategy, config, question_id FROM nodes WHERE run_id = ? AND model = ?", [run_id, model_name]
    )
    out: dict[tuple[str, str], set[str]] = {}
    for st, cfg, q in zip(df["strategy"], df["config"], df["question_id"]):
        out.setdefault((st, json.dumps(json.loads(cfg), sort_keys=True)), set()).add(q)
    return out


def analyse(
    prepared: PreparedRun,
    store: Store,
    model: ResolvedModel,
    engine: Engine,
    halt: threading.Event,
    question_ids: Iterable[str] | None = None,
) -> None:
    """Score the pool with every listed verifier, then run each strategy at each budget, for `question_ids` (None:
    every question of the run), skipping what is stored."""
    spec, run_id = prepared.spec, prepared.run_id
    chosen = None if question_ids is None else set(question_ids)
    questions = [q for q in prepared.questions if chosen is None or q.question_id in chosen]
    verifiers: dict[str, object] = {}

    def verifier(name: str):
        if name not in verifiers:
            options = prepared.verifier_options.get(name)
            verifiers[name] = create_verifier(name, options, task=prepared.task, engine=engine, model=model)
        return verifiers[name]

    for name in spec.verifier_names():
        if halt.is_set():
            return
        v = verifier(name)
        score_pool(store, run_id, model.name, questions, v, reads_generator_cache=getattr(v, "engine", None) is engine)
    if not prepared.searches:
        return
    finished = _searched(store, run_id, model.name)
    prompts = run_prompt_tokens(prepared, model, engine)
    known = store.query(
        "SELECT question_id, max(prompt_tokens) AS p FROM samples WHERE run_id = ? AND model = ? GROUP BY 1",
        [run_id, model.name],
    )
    root_tokens = {q: int(p) for q, p in zip(known["question_id"], known["p"]) if p == p}
    for search in prepared.searches:
        ran: dict[str, list[SearchResult]] = {}  # a sweep's ratios that split a budget alike share one search
        for budget in _budgets_flops(prepared, model, prompts):
            for config, ratio in _search_points(search, budget, model, prompts):
                if halt.is_set():
                    return
                record = search_record(config, budget, search.verifier, spec.seed, ratio)
                stored = finished.get((search.strategy, json.dumps(record, sort_keys=True)), set())
                todo = [q for q in questions if q.question_id not in stored]
                same = json.dumps(search_record(config, budget, search.verifier, spec.seed), sort_keys=True)
                for result in ran.get(same, []):  # this point's trees are those of a search already run: copied
                    have = {t.question.question_id for t in result.context.trees}
                    copy = {q.question_id for q in todo if q.question_id in have}
                    if copy:
                        store.write_shard(
                            "nodes",
                            run_id,
                            nodes_table(run_id, model.name, search.strategy, record, result.context, copy),
                        )
                    todo = [q for q in todo if q.question_id not in have]
                if not todo:
                    continue
                ran.setdefault(same, []).append(
                    run_search(
                        search.strategy,
                        todo,
                        prepared.task,
                        model,
                        engine,
                        verifier(search.verifier) if search.verifier else None,
                        config=config,
                        budget_flops=budget,
                        seed=spec.seed,
                        store=store,
                        run_id=run_id,
                        ratio=ratio,
                        prompt_tokens=root_tokens,
                    )
                )
