"""Answering one chat request the way a frozen policy says, under the request's FLOP budget.

1. The budget: `ttc_budget_flops` (or its alias `max_completion_flops`); none means no cap (the pilot uncapped, then
   the bin's largest cell). A budget must leave, after the pilot, the cheapest cell of every bin: the pilot is
   capped at `budget − reserve`, `reserve` the largest of the bins' cheapest cells, so whatever bin it predicts,
   a cell fits in what is left.
2. The pilot (the policy's `Predictor`): best-of-N's sampling and scoring for `pilot_samples` samples, their mean
   verifier score binned by the policy's thresholds. Its spend is the request's.
3. The cell: the predicted bin's configuration at the largest budget <= what the pilot left, run by the real
   strategy code (backend/strategies/runner.py `run_search`) on the engine, its ledger capped at that budget.
4. Usage: every engine call of both phases, generator and verifier, prompt tokens as each call read them (a prompt
   re-read by a later call counts again), completion tokens as generated; FLOPs as the ledgers charged them.
5. The request is written to the store as a run (name `served`) of both phases' search trees (the `nodes` table),
   only once it has been answered: a refused request writes nothing.

Requests are answered one at a time (one engine, one lock): per-request state lives in the request only."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.engines.base import Engine
from backend.errors import SpecError, TtcError
from backend.models.registry import ResolvedModel
from backend.prompting import build_prompt
from backend.serving.policy import Cell, Policy
from backend.strategies.runner import SearchResult, run_search
from backend.tasks.base import Grade, Question, Task, extract_answer
from backend.verifiers.base import Verifier
from store.rows import questions_table

SERVED = "served"
"""Name of a served request's run, and the dataset of its question."""


class RequestError(TtcError):
    """A request the server refuses: the OpenAI-style error's message names the field (HTTP 400 unless said)."""

    def __init__(self, param: str | None, message: str, status: int = 400, code: str | None = None):
        self.param, self.status, self.code = param, status, code
        super().__init__(message)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str
    name: str | None = None


class ChatRequest(BaseModel):
    """The fields of a chat completion this server reads. Sampling fields the policy fixes (temperature, max_tokens,
    top_p, ...) are refused rather than ignored: the policy's measured configuration is what is served."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[Message] = Field(min_length=1)
    ttc_budget_flops: float | None = Field(None, gt=0)
    max_completion_flops: float | None = Field(None, gt=0)
    seed: int | None = Field(None, ge=0)
    n: Literal[1] = 1
    stream: Literal[False] = False
    user: str | None = None


def parse_request(body: object) -> ChatRequest:
    """The request body checked; the first problem as a RequestError naming its field."""
    if not isinstance(body, dict):
        raise RequestError(None, "the request body must be a JSON object")
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        if err["type"] == "extra_forbidden":
            known = ", ".join(ChatRequest.model_fields)
            raise RequestError(field, f"{field}: unknown field; this server reads {known}") from None
        raise RequestError(field, f"{field}: {err['msg']}") from None
    if request.ttc_budget_flops is not None and request.max_completion_flops is not None:
        if request.ttc_budget_flops != request.max_completion_flops:
            raise RequestError("max_completion_flops", "max_completion_flops: differs from ttc_budget_flops; give one")
    if not any(m.role == "user" for m in request.messages):
        raise RequestError("messages", "messages: no user message to answer")
    return request


class ServedTask:
    """The study's task for a question it never saw: its prompt (system prompt, the user message's instruction,
    stops) so the served prompt is the one the policy was measured on, and its answer extraction; no grading, as a
    served question has no reference (every node's `correct` is unknown)."""

    def __init__(self, task: Task):
        self.task = task
        self.name = task.name
        self.system_prompt = task.system_prompt
        self.chat_stop = task.chat_stop
        self.few_shot_stop = task.few_shot_stop

    def questions(self) -> list[Question]:
        return []

    def user_message(self, question: Question) -> str:
        return self.task.user_message(question)

    def few_shot_examples(self) -> list[tuple[Question, str]]:
        return self.task.few_shot_examples()

    def few_shot_format(self, question: Question, answer: str | None) -> str:
        return self.task.few_shot_format(question, answer)

    def grade(self, question: Question, completion: str) -> Grade:
        return Grade(extract_answer(completion), None)


@dataclass
class Backend:
    """What a policy runs on: the model, its engine, the verifier and the study's task."""

    model: ResolvedModel
    engine: Engine
    verifier: Verifier
    task: Task


def open_backend(policy: Policy) -> Backend:
    """The policy's model on the study's engine, with its verifier and task, as the study's runs had them."""
    from backend.config import parse_spec
    from backend.engines import create_engine
    from backend.models.registry import resolve_model
    from backend.tasks import create_task
    from backend.verifiers import create_verifier

    spec = parse_spec(policy.spec, "--policy: spec")
    model = resolve_model(policy.model)
    task = ServedTask(create_task(spec.task, spec.seed))
    engine = create_engine(model, spec.engine)
    verifier = create_verifier(policy.verifier, policy.verifier_options, task=task, engine=engine, model=model)
    return Backend(model, engine, verifier, task)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    flops: float
    samples: int  # completions the engine generated
    verifier_passes: int


def usage_of(results: list[SearchResult]) -> Usage:
    """Every engine call of `results`' trees: generator calls (one node each) and verifier passes."""
    prompt = completion = samples = passes = 0
    flops = 0.0
    for r in results:
        for tree in r.context.trees:
            for n in tree.nodes:
                if n.kind != "root":
                    prompt += n.prompt_tokens
                    completion += n.completion_tokens
                    samples += 1
                prompt += sum(p[0] for p in n.verifier_passes)
                completion += sum(p[2] for p in n.verifier_passes)
                passes += len(n.verifier_passes)
        flops += sum(ledger.total for ledger in r.ledgers)
    return Usage(prompt, completion, flops, samples, passes)


def answer_text(tree) -> str:
    """The selected candidate's text as the user reads it: the whole solution from the question's prompt on (a step
    search's final node continues its parents' steps; a revision is its own text)."""
    node = tree.selected
    if node is None:
        return ""
    if node.prompt.startswith(tree.prompt):
        return node.prompt[len(tree.prompt) :] + node.text
    return node.text


class Runtime:
    """Answers chat requests with `policy` on `backend`, writing each to `store` (None: nowhere)."""

    def __init__(self, policy: Policy, backend: Backend, store=None):
        self.policy, self.backend, self.store = policy, backend, store
        self.lock = threading.Lock()
        self.reserve = max(policy.cheapest(b.level) for b in policy.bins)

    @property
    def model_ids(self) -> list[str]:
        return [self.policy.model]

    def check_budget(self, request: ChatRequest) -> float | None:
        budget = request.ttc_budget_flops or request.max_completion_flops
        if budget is not None and budget <= self.reserve:
            field = "ttc_budget_flops" if request.ttc_budget_flops else "max_completion_flops"
            raise RequestError(
                field,
                f"{field}: {budget:.4g} FLOPs does not cover the difficulty pilot and the cheapest configuration of "
                f"every bin; allowed: more than {self.reserve:.4g} FLOPs",
            )
        return budget

    def answer(self, request: ChatRequest) -> dict[str, Any]:
        if request.model not in self.model_ids:
            raise RequestError(
                "model",
                f"model: {request.model!r} is not served here; allowed: {', '.join(self.model_ids)}",
                code="model_not_found",
            )
        budget = self.check_budget(request)
        seed = request.seed or 0
        started = time.time()
        text = _user_text(request)
        # the question's id is its text's hash: sample seeds derive from (seed, question id), so a request sent again
        # with the same seed draws the same samples; the run id is the request's own
        qid = f"{SERVED}-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        question = Question(qid, self.backend.task.name, SERVED, text, "")
        run_id = f"{SERVED}-{uuid.uuid4().hex[:16]}"
        with self.lock:
            pilot = self._pilot(question, budget, seed)
            mean = _mean_score(pilot)
            if mean is None:
                raise RequestError(
                    "ttc_budget_flops",
                    f"ttc_budget_flops: {budget:.4g} FLOPs leave too little for one scored pilot sample after the "
                    f"{self.reserve:.4g} FLOPs reserved for the configuration; allowed: a larger budget",
                )
            level = self.policy.bin_of(mean)
            left = None if budget is None else budget - sum(x.total for x in pilot.ledgers)
            cell = self._cell(level, left)
            result = self._run_cell(question, cell, seed)
        usage = usage_of([pilot, result])
        if self.store is not None:
            self._write(run_id, question, request, pilot, result, cell, level, budget, usage, time.time() - started)
        tree = result.context.trees[0]
        return _completion(
            self.policy, request.model, run_id, answer_text(tree), tree, usage, cell, level, mean, budget
        )

    def _pilot(self, question: Question, budget: float | None, seed: int) -> SearchResult:
        p = self.policy.predictor
        cfg = {"n": p.pilot_samples, "max_tokens": p.max_tokens, "temperature": p.temperature}
        return self._search("best_of_n", question, cfg, None if budget is None else budget - self.reserve, seed)

    def _cell(self, level: int, left: float | None) -> Cell:
        cells = self.policy.bins[level - 1].cells
        if left is None:
            return cells[-1]
        cell = self.policy.cell_for(level, left)
        assert cell is not None  # the pilot was capped to leave the reserve
        return cell

    def _run_cell(self, question: Question, cell: Cell, seed: int) -> SearchResult:
        return self._search(cell.strategy, question, cell.config, cell.budget_flops, seed)

    def _search(self, strategy: str, question: Question, cfg: dict, budget: float | None, seed: int) -> SearchResult:
        b = self.backend
        # the prompt's tokens as the engine counts them, so the first round is priced exactly, not by the prompt's
        # byte length (an upper bound that trims a tight pilot below its sample count), as the analysis does
        counted = {question.question_id: b.engine.count_tokens(build_prompt(b.model, b.task, question))}
        try:
            return run_search(
                strategy,
                [question],
                b.task,
                b.model,
                b.engine,
                b.verifier,
                config=cfg,
                budget_flops=budget,
                seed=seed,
                prompt_tokens=counted,
            )
        except SpecError as e:  # a cell the strategies refuse: the policy's fault, not the request's
            raise RequestError(None, f"the policy's configuration {strategy} is refused: {e}", 500) from None

    def _write(self, run_id, question, request, pilot, result, cell, level, budget, usage, seconds) -> None:
        from backend.strategies.runner import nodes_table

        spec = {
            "name": SERVED,
            "models": [self.policy.model],
            "task": self.policy.spec.get("task"),
            "served": {
                "policy": self.policy.version,
                "budget_flops": budget,
                "seed": request.seed or 0,
                "bin": level,
                "configuration": cell.configuration,
                "cell_budget_flops": cell.budget_flops,
                "flops": usage.flops,
                "seconds": seconds,
            },
        }
        store, model = self.store, self.policy.model
        store.upsert_run(run_id, SERVED, spec, usage.samples, "running")
        store.write_shard("questions", run_id, questions_table(run_id, [question]))
        tables = [
            nodes_table(run_id, model, r.strategy, {**_record(r), "served": role}, r.context)
            for r, role in ((pilot, "pilot"), (result, "answer"))
        ]
        store.write_shard("nodes", run_id, pa.concat_tables(tables))
        store.finish_run(run_id, "done")


def _record(r: SearchResult) -> dict:
    from backend.strategies.runner import search_record

    verifier = r.context.verifier
    return search_record(r.config, r.ledgers[0].budget_flops, getattr(verifier, "name", None), r.context.seed)


def _user_text(request: ChatRequest) -> str:
    """The question: the last user message (the policy was measured on single questions, not conversations)."""
    return next(m.content for m in reversed(request.messages) if m.role == "user")


def _mean_score(pilot: SearchResult) -> float | None:
    scores = [n.score for n in pilot.context.trees[0].finals if n.score is not None]
    return sum(scores) / len(scores) if scores else None


def _completion(policy, model, run_id, text, tree, usage: Usage, cell: Cell, level, mean, budget) -> dict:
    node = tree.selected
    finish = "length" if node is not None and node.finish_reason == "length" else "stop"
    return {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": f"ttc-policy-{policy.version}",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
        "ttc": {
            "run_id": run_id,
            "policy_version": policy.version,
            "bin": level,
            "predicted_score": mean,
            "budget_flops": budget,
            "flops": usage.flops,
            "samples": usage.samples,
            "verifier_passes": usage.verifier_passes,
            "answer": None if node is None else node.answer,
            "configuration": {
                "name": cell.configuration,
                "strategy": cell.strategy,
                "config": cell.config,
                "verifier": cell.verifier,
                "budget_flops": cell.budget_flops,
                "held_out_accuracy": cell.held_out_accuracy,
                "interval": cell.interval,
            },
        },
    }


def error_body(e: RequestError) -> dict:
    """The OpenAI API's error shape."""
    return {"error": {"message": str(e), "type": "invalid_request_error", "param": e.param, "code": e.code}}


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()
