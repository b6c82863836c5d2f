"""`run_search`: run one strategy for a list of questions with one model and one verifier at a given budget,
and store every node of every tree (NODES shards) so the dashboard can draw the search and metrics score it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from backend.engines.base import Engine
from backend.errors import SpecError
from backend.ledger import Ledger
from backend.models.registry import ResolvedModel
from backend.prompting import build_prompt, stop_sequences
from backend.strategies import get_strategy, validate_config
from backend.strategies.context import SearchContext
from backend.strategies.sequential_revisions import Prompter
from backend.tasks.base import Question, Task
from backend.verifiers import VERIFIERS
from backend.verifiers.base import Verifier
from store.rows import questions_table
from store.schema import NODES


@dataclass
class SearchResult:
    run_id: str
    strategy: str
    config: dict
    context: SearchContext
    nodes: pa.Table

    @property
    def ledgers(self) -> list[Ledger]:
        return self.context.ledgers

    @property
    def selected(self) -> list:
        return [t.selected for t in self.context.trees]


def search_record(
    config: dict, budget_flops: float | None, verifier: str | None, seed: int, ratio: str | None = None
) -> dict:
    """What identifies one search in nodes.config: its parameters, budget, verifier and seed, and for a point of a
    sequential:parallel sweep its ratio (a re-run of a spec skips the searches whose record is already stored)."""
    record = {**config, "budget_flops": budget_flops, "verifier": verifier, "seed": seed}
    return record if ratio is None else {**record, "ratio": ratio}


def nodes_table(
    run_id: str,
    model_name: str,
    strategy: str,
    config: dict,
    ctx: SearchContext,
    question_ids: set[str] | None = None,
) -> pa.Table:
    """The NODES rows of every tree of `ctx` (of the trees of `question_ids` only, when given)."""
    cfg = json.dumps(config, sort_keys=True)
    rows = []
    for tree in ctx.trees:
        if question_ids is not None and tree.question.question_id not in question_ids:
            continue
        for n in tree.nodes:
            rows.append(
                {
                    "run_id": run_id,
                    "model": model_name,
                    "strategy": strategy,
                    "config": cfg,
                    "question_id": tree.question.question_id,
                    "node_id": n.node_id,
                    "parent_id": -1 if n.parent is None else n.parent.node_id,
                    "depth": n.depth,
                    "step_text": n.text,
                    "step_score": n.score,
                    "prompt_tokens": n.prompt_tokens,
                    "cached_prompt_tokens": n.cached_prompt_tokens,
                    "ledger_cached_tokens": n.ledger_cached_tokens,
                    "completion_tokens": n.completion_tokens,
                    "generator_flops": n.generator_flops,
                    "verifier_flops": n.verifier_flops,
                    "is_final": n.is_final,
                    "selected": n.selected,
                    "answer": n.answer,
                    "correct": n.correct,
                    "grade_error": n.grade_error,
                    "finish_reason": n.finish_reason or None if n.kind != "root" else None,
                    "kind": n.kind,
                    "question_key": tree.question.key,
                    "verifier_pass_prompt_tokens": [t[0] for t in n.verifier_passes],
                    "verifier_pass_cached_tokens": [t[1] for t in n.verifier_passes],
                    "verifier_pass_completion_tokens": [t[2] for t in n.verifier_passes],
                }
            )
    return pa.Table.from_pylist(rows, schema=NODES)


def run_search(
    strategy: str,
    questions: Sequence[Question],
    task: Task,
    model: ResolvedModel,
    engine: Engine,
    verifier: Verifier | None = None,
    *,
    config: dict | None = None,
    budget_flops: float | None = None,
    seed: int = 0,
    store=None,
    run_id: str | None = None,
    ratio: str | None = None,
    prompt_tokens: dict[str, int] | None = None,
) -> SearchResult:
    """Run `strategy` on every question at once (one engine call per round across all of them) with a FLOP
    budget per question (None: unlimited), then write the trees to `store` as one NODES shard. `ratio` marks the
    search as one point of a sequential:parallel sweep (it becomes part of the stored record). `prompt_tokens`:
    {question_id: tokens of its prompt} as the engine counted them (the pool's samples), so the first round is
    priced exactly rather than by the prompt's byte length."""
    cfg = validate_config(strategy, config)
    entry = get_strategy(strategy)
    if verifier is None and entry.requires_verifier(cfg):
        raise SpecError("verifier", f"{strategy} needs a verifier", ", ".join(VERIFIERS))
    if budget_flops is not None and budget_flops <= 0:
        raise SpecError("budget_flops", f"must be > 0, got {budget_flops!r}")
    prompts = [build_prompt(model, task, q) for q in questions]
    known = [(prompt_tokens or {}).get(q.question_id) for q in questions]
    ctx = SearchContext(
        engine,
        task,
        questions,
        prompts,
        verifier,
        budget_flops,
        seed,
        stop_sequences(model, task),
        Prompter(model, task),
        known,
    )
    entry.factory().run(ctx, cfg)
    run_id = run_id or f"search-{strategy}-{seed}"
    record = search_record(cfg, budget_flops, getattr(verifier, "name", None), seed, ratio)
    table = nodes_table(run_id, model.name, strategy, record, ctx)
    if store is not None:
        if not store.has_questions(run_id):
            store.write_shard("questions", run_id, questions_table(run_id, list(questions)))
        store.write_shard("nodes", run_id, table)
    return SearchResult(run_id, strategy, cfg, ctx, table)
