"""Sampling a run's pool: the prepared run (everything resolved and checked before the store is touched), the
per-sample seed, and one engine batch of samples graded into shard rows. The worker (backend/execution/execute.py) runs it
on its own engine; engine replicas on Ray (backend/execution/fanout.py) run the same code on their shards, which is why
their rows are the rows one engine writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from backend.config import ModelSpec, RunSpec
from backend.engines import ENGINES, GenerationRequest, SamplingParams
from backend.engines.base import Completion, Engine
from backend.errors import SpecError, TtcError
from backend.ledger import ModelArch, decode_flops, prefill_flops
from backend.metrics.confidence import TOP_K as CONFIDENCE_TOP_K
from backend.metrics.confidence import encode_token_confidence, trace_confidence_of
from backend.models.registry import ResolvedModel, resolve_model
from backend.options import Options
from backend.prompting import build_prompt, stop_sequences
from backend.strategies import STRATEGIES, get_strategy, validate_config
from backend.strategies.context import seed_for
from backend.tasks import Question, Task, create_task
from backend.tasks.base import grade_or_error
from backend.verifiers import VERIFIERS, verifier_options
from store import Store
from store.rows import ShardWriter


def sample_seed(run_seed: int, question_id: str, sample_idx: int) -> int:
    """Deterministic per-sample seed: a resumed run regenerates exactly the sample it lost (strategies.context.seed_for,
    the one seeding rule, over the run's seed, the question and the sample's index)."""
    return seed_for(run_seed, question_id, sample_idx)


@dataclass(frozen=True)
class PreparedSearch:
    strategy: str
    config: dict  # validated, defaults filled in
    verifier: str | None
    ratios: tuple[str, ...] = ()  # a sequential:parallel sweep: one search per ratio at each budget

    @property
    def points_per_budget(self) -> int:
        return max(1, len(self.ratios))


@dataclass
class PreparedRun:
    spec: RunSpec
    run_id: str
    task: Task
    questions: list[Question]
    models: list[tuple[ModelSpec, ResolvedModel]]
    searches: list[PreparedSearch] = field(default_factory=list)
    verifier_options: dict[str, Options] = field(default_factory=dict)  # the listed verifiers', checked

    @property
    def total_samples(self) -> int:
        return len(self.questions) * self.spec.samples_per_question * len(self.models)


def prepare_run(spec: RunSpec) -> PreparedRun:
    """Resolve and validate everything a run needs; raises TtcError before anything is written."""
    task = create_task(spec.task, seed=spec.seed)
    questions = task.questions()
    ids = [q.question_id for q in questions]
    if len(set(ids)) != len(ids):
        raise TtcError("task: question ids are not unique; give each JSONL line a distinct 'id'")
    models = []
    for i, m in enumerate(spec.model_specs()):
        resolved = resolve_model(
            m.name, field=f"models[{i}]", prompt_style=m.prompt_style, hub_ok=ENGINES[spec.engine.kind].loads_hub_ids
        )
        models.append((m, resolved))
    verifiers = {
        name: verifier_options(name, opts, f"verifiers[{i}]") for i, (name, opts) in enumerate(spec.verifier_specs())
    }
    searches = [_prepare_search(i, s, spec) for i, s in enumerate(spec.strategies)]
    return PreparedRun(spec, spec.run_id(), task, questions, models, searches, verifiers)


def _prepare_search(i: int, s, spec: RunSpec) -> PreparedSearch:
    where = f"strategies[{i}]"
    strategy = get_strategy(s.name, f"{where}.name")
    cfg = validate_config(s.name, s.config, f"{where}.config", f"{where}.name")
    names = spec.verifier_names()
    verifier = s.verifier or (names[0] if names else None)
    if verifier is not None:
        VERIFIERS.lookup(verifier, f"{where}.verifier")
        if verifier not in names:  # a verifier only this strategy uses: it takes its default options
            verifier_options(verifier, None, f"{where}.verifier")
    elif strategy.requires_verifier(cfg):
        raise SpecError(f"{where}.verifier", f"{s.name} needs a verifier and the spec lists none", ", ".join(VERIFIERS))
    if s.ratios and not strategy.takes_ratios:
        sweepers = ", ".join(n for n, e in STRATEGIES.items() if e.takes_ratios)
        raise SpecError(f"{where}.ratios", f"{s.name} has no sequential:parallel sweep", f"ratios on {sweepers}")
    return PreparedSearch(s.name, cfg, verifier, tuple(s.ratios or ()))


def model_arch(model: ResolvedModel) -> ModelArch:
    """The model's architecture numbers: a GGUF file's are read when it resolves, a Hugging Face id's are set by
    `execute` from the engine that loaded it, before anything is generated or priced."""
    assert model.arch is not None, f"{model.name}: architecture unknown before its engine has loaded it"
    return model.arch


def _sample_row(
    run_id: str,
    model: ResolvedModel,
    task: Task,
    q: Question,
    idx: int,
    prompt: str,
    c: Completion,
    samples_per_question: int,
) -> dict:
    grade = grade_or_error(task, q, c.text)
    arch = model_arch(model)
    pre = float(prefill_flops(arch, c.prompt_tokens))
    dec = float(decode_flops(arch, c.prompt_tokens, c.completion_tokens))
    token_confidence = encode_token_confidence(c.logprobs)
    return {
        "run_id": run_id,
        "model": model.name,
        "task": q.task,
        "question_id": q.question_id,
        "sample_idx": idx,
        "strategy": "sample",
        "prompt": prompt,
        "completion": c.text,
        "answer": grade.answer,
        "score": None if grade.score is None else float(grade.score),
        "correct": None if grade.error else grade.correct,
        "prompt_tokens": c.prompt_tokens,
        "cached_prompt_tokens": c.cached_prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "logprob_sum": c.logprob_sum,
        "logprob_mean": c.logprob_mean,
        "finish_reason": c.finish_reason,
        "latency_s": c.latency_s,
        "prefill_flops": pre,
        "decode_flops": dec,
        "flops": dec + pre / samples_per_question,
        "seed": c.seed,
        "created_at": datetime.now(UTC),
        "grade_error": grade.error,
        "dataset": q.dataset,
        "token_confidence": token_confidence,
        "question_key": q.key,
        "trace_confidence": trace_confidence_of(token_confidence),
    }


def sample_model(
    prepared: PreparedRun,
    store: Store,
    model: ResolvedModel,
    engine: Engine,
    missing: list[tuple[Question, int]],
    done: int,
    progress: Callable[[int, int], None] | None,
    halt: threading.Event,
) -> int:
    """Generate the missing samples of one model in one engine batch; returns how many were written."""
    spec, run_id = prepared.spec, prepared.run_id
    prompts = {q.question_id: build_prompt(model, prepared.task, q) for q in prepared.questions}
    stop = stop_sequences(model, prepared.task)
    requests = [
        GenerationRequest(
            prompt=prompts[q.question_id],
            params=SamplingParams(
                temperature=spec.temperature,
                top_p=spec.top_p,
                max_tokens=spec.max_tokens,
                seed=sample_seed(spec.seed, q.question_id, i),
                stop=stop,
                logprobs=CONFIDENCE_TOP_K,  # the chosen token's logprob, and what DeepConf's token confidence reads
            ),
            tag=(q, i),
            affinity=q.question_id,  # a question's samples share its prompt: one slot takes them in turn
        )
        for q, i in missing
    ]
    counter = {"done": done}

    def on_rows(n: int) -> None:
        counter["done"] += n
        if progress:
            progress(counter["done"], prepared.total_samples)

    writer = ShardWriter(store, run_id, on_rows=on_rows)

    def on_complete(_ri, req, comps) -> None:
        q, idx = req.tag
        writer.put(
            lambda: _sample_row(run_id, model, prepared.task, q, idx, req.prompt, comps[0], spec.samples_per_question)
        )

    try:
        engine.generate(
            requests, on_complete=on_complete, should_stop=lambda: halt.is_set() or writer.error is not None
        )
    finally:
        writer.close()
    return writer.written
