"""Answering one request (a chat's last user message, or a completion's prompt) the way a frozen policy says, under
the request's FLOP budget.

1. The budget, the first given of: the body's `ttc_budget_flops` (or its alias `max_completion_flops`) or
   `ttc_budget_samples`, the `X-TTC-Budget` header (`2e12`, `2e12 flops` or `4 samples`), the server's default
   (`ttc serve --default-budget`, the same syntax); none means no cap (the pilot uncapped, then the bin's largest
   cell). Samples are priced by the one pricing rule (backend/pricing.py `sample_flops`): one sample of this
   question is its prompt's prefill plus the study's `max_tokens` of decode. The pilot is capped at
   `budget − reserve`, `reserve` the largest of the bins' cheapest cells, so whatever bin it predicts, a cell fits
   in what is left; a budget must therefore cover `reserve` plus one scored pilot sample of this prompt, priced by
   the search's own estimate (`SearchContext.estimate`) before anything is generated. A request whose prompt and
   longest completion exceed the engine's context is refused as early.
2. The pilot (the policy's `Predictor`): best-of-N's sampling and scoring for `pilot_samples` samples, their mean
   verifier score binned by the policy's thresholds. Its spend is the request's.
3. The cell: the predicted bin's configuration at the largest budget <= what the pilot left, run by the real
   strategy code (backend/strategies/runner.py `run_search`) on the engine, its ledger capped at that budget.
4. Usage: every engine call of both phases, generator and verifier, prompt tokens as each call read them (a prompt
   re-read by a later call counts again), completion tokens as generated; FLOPs as the ledgers charged them.
5. `n` choices are n independent policy answers (pilot and cell each), choice i seeded with `seed + i` (choice 0 is
   what the same request with n = 1 gets); the budget applies to each choice, usage sums over all of them.
6. The request is written to the store as a run (name `served`) of every choice's search trees (the `nodes`
   table), only once it has been answered: a refused request writes nothing.

Concurrency: everything a request decides lives in the request (its seed, budget, pilot, cell, searches); nothing
shared changes while it runs, so a request answers the same alone or beside others, given an engine whose
completion of (prompt, seed) does not depend on what else it is generating. `Admission` lets up to `concurrency`
requests onto the engine at once, in arrival order; on llama.cpp they share its slots and batches
(engines/threaded.py). An engine that takes one `generate` call at a time (vLLM in-process) gets one request at a
time. llama.cpp's arithmetic depends on what shares a batch and on its prompt cache, so on it by default a request's
judge scores differ from its answer alone in their low digits (and a request near a bin's threshold may change bin):
same seeds, same answers up to that float noise. `ttc serve --reproducible` gives llama.cpp one slot and no prompt
cache: requests still arrive and are admitted together, their completions take the slot in turn, and each answer is
exactly the one it gets alone (tested on the real model; exactly on the scripted engine and on vLLM)."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.engines.base import Engine, SamplingParams
from backend.errors import SpecError, TtcError
from backend.models.registry import ResolvedModel
from backend.pricing import sample_flops
from backend.prompting import build_prompt
from backend.serving.policy import Cell, Policy
from backend.strategies.context import SearchContext
from backend.strategies.runner import SearchResult, run_search
from backend.tasks.base import Grade, Question, Task, extract_answer
from backend.verifiers.base import Verifier
from store.catalog import SERVED
from store.rows import questions_table


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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


MAX_CHOICES = 16
"""The most choices (`n`) one request may ask for: each is a whole policy answer on the one engine."""

BUDGET_HEADER = "X-TTC-Budget"
BUDGET_SYNTAX = re.compile(r"\s*([0-9.eE+-]+)\s*(flops|samples)?\s*", re.I)


@dataclass(frozen=True)
class Budget:
    """A budget as asked: `amount` FLOPs, or `amount` samples of this request's question (priced once its prompt's
    tokens are known); `source` is the field, header or option it came from, named in errors."""

    amount: float
    unit: Literal["flops", "samples"]
    source: str


def parse_budget(text: str, source: str) -> Budget:
    """`2e12`, `2e12 flops` or `4 samples` (a header's or `--default-budget`'s value); a bad one is a SpecError
    naming `source`."""
    match = BUDGET_SYNTAX.fullmatch(text)
    amount = None
    if match is not None:
        try:
            amount = float(match.group(1))
        except ValueError:
            pass
    if amount is None or not amount > 0 or amount == float("inf"):
        allowed = "a positive number of FLOPs ('2e12' or '2e12 flops') or of samples ('4 samples')"
        raise SpecError(source, f"{text!r} is not a budget", allowed)
    unit = (match.group(2) or "flops").lower()  # type: ignore[union-attr]
    return Budget(amount, unit, source)  # type: ignore[arg-type]


class Request(BaseModel):
    """The fields of a request this server reads. Sampling fields the policy fixes (temperature, max_tokens, top_p,
    ...) are refused rather than ignored: the policy's measured configuration is what is served."""

    model_config = ConfigDict(extra="forbid")
    model: str
    ttc_budget_flops: float | None = Field(None, gt=0)
    max_completion_flops: float | None = Field(None, gt=0)
    ttc_budget_samples: float | None = Field(None, gt=0)
    seed: int | None = Field(None, ge=0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    text_field: ClassVar[str]  # the field the question comes from

    def question_text(self) -> str:
        raise NotImplementedError

    @property
    def budget(self) -> Budget | None:
        """The body's budget (parse_request allows at most one of its fields)."""
        if self.ttc_budget_samples is not None:
            return Budget(self.ttc_budget_samples, "samples", "ttc_budget_samples")
        if self.ttc_budget_flops is not None:
            return Budget(self.ttc_budget_flops, "flops", "ttc_budget_flops")
        if self.max_completion_flops is not None:
            return Budget(self.max_completion_flops, "flops", "max_completion_flops")
        return None


class ChatRequest(Request):
    """`POST /v1/chat/completions`: the question is the last user message."""

    messages: list[Message] = Field(min_length=1)
    text_field: ClassVar[str] = "messages"

    def question_text(self) -> str:
        # the policy was measured on single questions, not conversations
        return next(m.content for m in reversed(self.messages) if m.role == "user")


class CompletionRequest(Request):
    """`POST /v1/completions`: the prompt string is the question, put in the study's task prompt as a chat's user
    message is (not continued as raw text: the policy was measured on the task's prompt)."""

    prompt: str = Field(min_length=1)
    text_field: ClassVar[str] = "prompt"

    def question_text(self) -> str:
        return self.prompt


def parse_request(body: object, kind: type[Request] = ChatRequest) -> Request:
    """The request body checked; the first problem as a RequestError naming its field."""
    if not isinstance(body, dict):
        raise RequestError(None, "the request body must be a JSON object")
    try:
        request = kind.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        if err["type"] == "extra_forbidden":
            known = ", ".join(kind.model_fields)
            raise RequestError(field, f"{field}: unknown field; this server reads {known}") from None
        raise RequestError(field, f"{field}: {err['msg']}") from None
    if request.ttc_budget_flops is not None and request.max_completion_flops is not None:
        if request.ttc_budget_flops != request.max_completion_flops:
            raise RequestError("max_completion_flops", "max_completion_flops: differs from ttc_budget_flops; give one")
    if request.ttc_budget_samples is not None and (request.ttc_budget_flops or request.max_completion_flops):
        field = "ttc_budget_flops" if request.ttc_budget_flops is not None else "max_completion_flops"
        raise RequestError("ttc_budget_samples", f"ttc_budget_samples: given with {field}; give the budget once")
    if request.stream_options is not None and not request.stream:
        raise RequestError("stream_options", "stream_options: only allowed when stream is true")
    if isinstance(request, ChatRequest) and not any(m.role == "user" for m in request.messages):
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
    """What a policy runs on: the model, its engine, the verifier and the study's task; `context_tokens` is the
    prompt + completion tokens one engine request holds (None: the engine does not say)."""

    model: ResolvedModel
    engine: Engine
    verifier: Verifier
    task: Task
    context_tokens: int | None = None


def open_backend(policy: Policy, reproducible: bool = False) -> Backend:
    """The policy's model on the study's engine, with its verifier and task, as the study's runs had them.
    `reproducible`: on llama.cpp, one slot and no prompt cache, so a request's answer is the same whatever else the
    server answers meanwhile (each completion a function of its prompt and seed), at the price of batching."""
    from backend.config import parse_spec
    from backend.engines import create_engine
    from backend.models.registry import resolve_model
    from backend.tasks import create_task
    from backend.verifiers import create_verifier

    model = resolve_model(policy.model, "--policy: model")  # a policy for a model this machine lacks: one line
    spec = parse_spec(policy.spec, "--policy: spec")
    task = ServedTask(create_task(spec.task, spec.seed))
    options = spec.engine
    if reproducible and options.kind == "llamacpp":
        options = options.model_copy(update={"n_parallel": 1, "prompt_cache": False})
    elif reproducible and options.kind != "vllm":  # vLLM in-process takes one request at a time already
        raise SpecError(
            "--reproducible",
            f"the policy's engine is {options.kind!r}, whose server batches requests as it likes",
            "a policy on llamacpp or vllm",
        )
    engine = create_engine(model, options)
    verifier = create_verifier(policy.verifier, policy.verifier_options, task=task, engine=engine, model=model)
    return Backend(model, engine, verifier, task, getattr(spec.engine, "n_ctx_per_slot", None))


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


@dataclass
class Choice:
    """One policy answer: its pilot, the bin it predicted, the cell run and what both cost."""

    index: int
    seed: int
    pilot: SearchResult
    predicted_score: float
    level: int
    cell: Cell
    result: SearchResult

    @property
    def usage(self) -> Usage:
        return usage_of([self.pilot, self.result])

    @property
    def text(self) -> str:
        return answer_text(self.result.context.trees[0])

    @property
    def finish_reason(self) -> str:
        node = self.result.context.trees[0].selected
        return "length" if node is not None and node.finish_reason == "length" else "stop"

    def extension(self) -> dict[str, Any]:
        """The choice's part of the `ttc` extension: what the policy chose for it and what it cost."""
        node, cell, usage = self.result.context.trees[0].selected, self.cell, self.usage
        return {
            "seed": self.seed,
            "bin": self.level,
            "predicted_score": self.predicted_score,
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
        }


@dataclass
class Answered:
    """A request answered: its run id, its choices and their summed usage."""

    run_id: str
    policy_version: str
    budget: float | None
    seed: int
    choices: list[Choice]
    usage: Usage
    created: int

    def extension(self) -> dict[str, Any]:
        """The response's `ttc` object: the request's totals (each choice's own under `choices[i].ttc`)."""
        return {
            "run_id": self.run_id,
            "policy_version": self.policy_version,
            "budget_flops": self.budget,
            "seed": self.seed,
            "flops": self.usage.flops,
            "samples": self.usage.samples,
            "verifier_passes": self.usage.verifier_passes,
        }


class Admission:
    """At most `limit` requests on the engine at once, let in first come, first served (a request waiting for a
    place never sees a later one pass it)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.cond = threading.Condition()
        self.issued = self.admitted = self.running = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.cond:
            ticket = self.issued
            self.issued += 1
            self.cond.wait_for(lambda: ticket == self.admitted and self.running < self.limit)
            self.admitted += 1
            self.running += 1
            self.cond.notify_all()  # the next ticket may fit too
        try:
            yield
        finally:
            with self.cond:
                self.running -= 1
                self.cond.notify_all()


def engine_concurrency(engine: Engine) -> int:
    """Requests `ttc serve` lets onto `engine` at once by default: one per slot where `generate` may be called from
    several threads (each request's calls then share the slots and llama.cpp's batches), else one."""
    if not getattr(engine, "concurrent_generate", False):
        return 1
    return int(getattr(engine, "n_parallel", 1) or 1)


class Runtime:
    """Answers requests with `policy` on `backend`, writing each to `store` (None: nowhere). `concurrency`: requests
    on the engine at once (default: `engine_concurrency`); `default_budget`: the budget of a request that gives none."""

    def __init__(
        self,
        policy: Policy,
        backend: Backend,
        store=None,
        concurrency: int | None = None,
        default_budget: Budget | None = None,
    ):
        self.policy, self.backend, self.store = policy, backend, store
        if concurrency is None:
            concurrency = engine_concurrency(backend.engine)
        if concurrency < 1:
            raise SpecError("--concurrency", f"{concurrency} requests at once", "1 or more")
        if concurrency > 1 and not getattr(backend.engine, "concurrent_generate", False):
            raise SpecError(
                "--concurrency",
                f"{concurrency}, but the {backend.engine.name} engine generates for one caller at a time",
                "1",
            )
        self.concurrency = concurrency
        self.admission = Admission(concurrency)
        self.default_budget = default_budget
        self.reserve = max(policy.cheapest(b.level) for b in policy.bins)
        # the longest completion any phase may ask for: what a prompt must leave room for in the context
        self.max_tokens = max(
            [policy.predictor.max_tokens] + [int(c.config.get("max_tokens", 0)) for b in policy.bins for c in b.cells]
        )

    @property
    def model_ids(self) -> list[str]:
        return [self.policy.model]

    def pilot_floor(self, question: Question, prompt_tokens: int) -> float:
        """FLOPs of one scored pilot sample of `question`, as the pilot's search prices it before drawing it (the
        search's own estimate: prefill, `max_tokens` of decode and the verifier's pass): a pilot capped below this
        draws nothing."""
        b, p = self.backend, self.policy.predictor
        prompt = build_prompt(b.model, b.task, question)
        ctx = SearchContext(b.engine, b.task, [question], [prompt], b.verifier, root_tokens=[prompt_tokens])
        params = SamplingParams(temperature=p.temperature, max_tokens=p.max_tokens, seed=0)
        return ctx.estimate([ctx.expansion(0, ctx.trees[0].root, 1, params)])

    def one_sample(self, prompt_tokens: int) -> float:
        """One sample of this question (backend/pricing.py): its prompt's prefill plus the study's `max_tokens`."""
        return float(sample_flops(self.backend.engine.arch, prompt_tokens, int(self.policy.spec["max_tokens"])))

    def check_budget(self, asked: Budget | None, question: Question, prompt_tokens: int) -> float | None:
        """The budget in FLOPs, refused before anything is generated unless it covers one scored pilot sample of
        this prompt plus the cheapest configuration of every bin."""
        if asked is None:
            return None
        budget = asked.amount
        if asked.unit == "samples":
            budget = asked.amount * self.one_sample(prompt_tokens)
        floor = self.pilot_floor(question, prompt_tokens)
        minimum = self.reserve + floor
        if budget < minimum:
            field = asked.source
            given = f"{budget:.4g} FLOPs"
            allowed = f"at least {minimum:.4g} FLOPs"
            if asked.unit == "samples":
                one = self.one_sample(prompt_tokens)
                given = f"{asked.amount:g} samples ({budget:.4g} FLOPs at {one:.4g} a sample of this prompt)"
                allowed += f" ({minimum / one:.3g} samples)"
            raise RequestError(
                field,
                f"{field}: {given} is below this request's minimum: one scored pilot sample of its prompt "
                f"({floor:.4g}) plus the cheapest configuration of every bin ({self.reserve:.4g}); allowed: {allowed}",
            )
        return budget

    def check_context(self, request: Request, prompt_tokens: int) -> None:
        context = self.backend.context_tokens
        if context is not None and prompt_tokens + self.max_tokens > context:
            field = request.text_field
            raise RequestError(
                field,
                f"{field}: the prompt is {prompt_tokens} tokens; with the {self.max_tokens} completion tokens the "
                f"policy asks for, {prompt_tokens + self.max_tokens} exceed the model's context of {context} tokens; "
                f"allowed: a prompt of at most {context - self.max_tokens} tokens",
                code="context_length_exceeded",
            )

    def answer(self, request: Request, header_budget: Budget | None = None) -> Answered:
        """The request answered; its budget is the body's, else `header_budget` (the HTTP header's), else the
        server's default."""
        if request.model not in self.model_ids:
            raise RequestError(
                "model",
                f"model: {request.model!r} is not served here; allowed: {', '.join(self.model_ids)}",
                404,
                "model_not_found",
            )
        # no seed: fresh samples, as OpenAI's API draws them; the seed drawn is returned (`ttc.seed`) and stored, so
        # the answer can be reproduced by sending it
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31 - 1 - MAX_CHOICES)
        started = time.time()
        text = request.question_text()
        # the question's id is its text's hash: sample seeds derive from (seed, question id), so a request sent again
        # with the same seed draws the same samples; the run id is the request's own
        qid = f"{SERVED}-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        question = Question(qid, self.backend.task.name, SERVED, text, "")
        run_id = f"{SERVED}-{uuid.uuid4().hex[:16]}"
        b = self.backend
        asked = request.budget or header_budget or self.default_budget
        with self.admission():
            tokens = b.engine.count_tokens(build_prompt(b.model, b.task, question))
            self.check_context(request, tokens)
            budget = self.check_budget(asked, question, tokens)
            choices = [self._choice(i, question, tokens, budget, seed + i) for i in range(request.n)]
        usage = usage_of([r for c in choices for r in (c.pilot, c.result)])
        answered = Answered(run_id, self.policy.version, budget, seed, choices, usage, int(started))
        if self.store is not None:
            self._write(answered, question, request, time.time() - started)
        return answered

    def _choice(self, index: int, question: Question, tokens: int, budget: float | None, seed: int) -> Choice:
        pilot = self._pilot(question, tokens, budget, seed)
        mean = _mean_score(pilot)
        if mean is None:  # check_budget leaves room for one scored sample: a verifier that scored nothing
            raise RequestError(None, "the difficulty pilot drew no scored sample", 500, "server_error")
        level = self.policy.bin_of(mean)
        left = None if budget is None else budget - sum(x.total for x in pilot.ledgers)
        cell = self._cell(level, left)
        result = self._search(cell.strategy, question, tokens, cell.config, cell.budget_flops, seed)
        return Choice(index, seed, pilot, mean, level, cell, result)

    def _pilot(self, question: Question, tokens: int, budget: float | None, seed: int) -> SearchResult:
        p = self.policy.predictor
        cfg = {"n": p.pilot_samples, "max_tokens": p.max_tokens, "temperature": p.temperature}
        return self._search("best_of_n", question, tokens, cfg, None if budget is None else budget - self.reserve, seed)

    def _cell(self, level: int, left: float | None) -> Cell:
        cells = self.policy.bins[level - 1].cells
        if left is None:
            return cells[-1]
        cell = self.policy.cell_for(level, left)
        assert cell is not None  # the pilot was capped to leave the reserve
        return cell

    def _search(
        self, strategy: str, question: Question, tokens: int, cfg: dict, budget: float | None, seed: int
    ) -> SearchResult:
        b = self.backend
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
                # the prompt's tokens as the engine counts them, so the first round is priced exactly, not by the
                # prompt's byte length (an upper bound that trims a tight pilot below its sample count), as the
                # analysis does
                prompt_tokens={question.question_id: tokens},
            )
        except SpecError as e:  # a cell the strategies refuse: the policy's fault, not the request's
            raise RequestError(None, f"the policy's configuration {strategy} is refused: {e}", 500) from None

    def _write(self, answered: Answered, question: Question, request: Request, seconds: float) -> None:
        from backend.strategies.runner import nodes_table

        run_id, usage = answered.run_id, answered.usage
        spec = {
            "name": SERVED,
            "models": [self.policy.model],
            "task": self.policy.spec.get("task"),
            "served": {
                "policy": self.policy.version,
                "endpoint": request.text_field,
                "budget_flops": answered.budget,
                "seed": answered.seed,
                "n": request.n,
                "flops": usage.flops,
                "seconds": seconds,
                "choices": [
                    {
                        "seed": c.seed,
                        "bin": c.level,
                        "configuration": c.cell.configuration,
                        "cell_budget_flops": c.cell.budget_flops,
                        "flops": c.usage.flops,
                        # what the study promised of this cell, for the Serving page's labelled accuracy
                        "held_out_accuracy": c.cell.held_out_accuracy,
                        "promise_low": None if c.cell.interval is None else c.cell.interval[0],
                        "promise_high": None if c.cell.interval is None else c.cell.interval[1],
                    }
                    for c in answered.choices
                ],
            },
        }
        store, model = self.store, self.policy.model
        store.upsert_run(run_id, SERVED, spec, usage.samples, "running")
        store.write_shard("questions", run_id, questions_table(run_id, [question]))
        tables = [
            nodes_table(run_id, model, r.strategy, {**_record(r), "served": role, "choice": c.index}, r.context)
            for c in answered.choices
            for r, role in ((c.pilot, "pilot"), (c.result, "answer"))
        ]
        store.write_shard("nodes", run_id, pa.concat_tables(tables))
        store.finish_run(run_id, "done")


def _record(r: SearchResult) -> dict:
    from backend.strategies.runner import search_record

    verifier = r.context.verifier
    return search_record(r.config, r.ledgers[0].budget_flops, getattr(verifier, "name", None), r.context.seed)


def _mean_score(pilot: SearchResult) -> float | None:
    scores = [n.score for n in pilot.context.trees[0].finals if n.score is not None]
    return sum(scores) / len(scores) if scores else None


def error_body(e: RequestError) -> dict:
    """The OpenAI API's error shape."""
    kind = "server_error" if e.status >= 500 else "invalid_request_error"
    return {"error": {"message": str(e), "type": kind, "param": e.param, "code": e.code}}
