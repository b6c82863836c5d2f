"""Test doubles that implement the real protocols: fakes registered through the real hooks, not patches.

`ScriptedEngine` is an `Engine`: it answers each prompt from a list of (regex, reply) rules — a string, a list
cycled per rule, or a callable(prompt, params) — counts one token per character, honours stop strings and
max_tokens, serves cached prompt prefixes like an ideal prefix cache, and records every `generate` call.
`ScriptedVerifier` is a `Verifier` whose per-step scores come from (regex, score) rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from backend.engines.base import Completion, GenerationRequest, SamplingParams, TokenLogprob
from backend.ledger import ModelArch, prefill_flops
from backend.models.registry import ResolvedModel
from backend.tasks.base import Grade, Question, extract_answer
from backend.verifiers.base import ScoreRequest, StepScores, Usage

GEN_ARCH = ModelArch(n_params=10_000, n_layers=2, d_model=16)
VERIFIER_ARCH = ModelArch(n_params=5_000, n_layers=1, d_model=8)


class ScriptedReply:
    def __init__(self, text: str, top: dict[str, float] | None = None):
        self.text, self.top = text, top or {}


class ScriptedEngine:
    name = "scripted"
    arch = GEN_ARCH
    inline_follow_ups = True  # on_complete runs in the middle of the batch, like the threaded engines
    exact_token_counts = True
    concurrent_generate = True  # several threads may call generate at once (list rules then cycle in call order)
    n_parallel = 4

    def __init__(self, rules: Sequence[tuple[str, object]], default: object = "Answer: 0"):
        self.rules = [(re.compile(p, re.S), r) for p, r in rules]
        self.default = default
        self.counters: dict[int, int] = {}
        self.calls: list[list[GenerationRequest]] = []
        self.seen: list[str] = []

    def _reply(self, prompt: str, params: SamplingParams) -> ScriptedReply:
        for i, (pat, rule) in enumerate(self.rules):  # noqa: B007 - the match is used after the loop
            if pat.search(prompt):
                break
        else:
            i, rule = -1, self.default
        if callable(rule):
            rule = rule(prompt, params)
        if isinstance(rule, list):
            k = self.counters.get(i, 0)
            self.counters[i] = k + 1
            rule = rule[k % len(rule)]
        return rule if isinstance(rule, ScriptedReply) else ScriptedReply(str(rule))

    def count_tokens(self, text: str) -> int:
        return len(text)  # one token per character, as its completions report

    def _cached(self, prompt: str) -> int:
        best = 0
        for s in self.seen:
            n = 0
            for a, b in zip(s, prompt):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        return best

    def generate(self, requests, on_complete=None, should_stop=None):
        self.calls.append(list(requests))
        out = []
        for ri, req in enumerate(requests):
            comps = []
            for _ in range(req.n):
                reply = self._reply(req.prompt, req.params)
                text, finish = reply.text, "stop"
                cuts = [text.find(s) for s in req.params.stop if s and s in text]
                if cuts:
                    text = text[: min(cuts)]
                if len(text) > req.params.max_tokens:
                    text, finish = text[: req.params.max_tokens], "length"
                cached = self._cached(req.prompt)
                self.seen.append(req.prompt)
                lp = None
                if req.params.logprobs is not None:
                    best = max(reply.top, key=reply.top.get) if reply.top else text
                    lp = [TokenLogprob(best, reply.top.get(best, 0.0), dict(reply.top))]
                comps.append(Completion(text, len(req.prompt), len(text), finish, 0.0, cached, req.params.seed, lp))
            out.append(comps)
            if on_complete:
                on_complete(ri, req, comps)
        return out

    def close(self) -> None:
        pass


class ScriptedVerifier:
    name = "scripted_verifier"
    arch = VERIFIER_ARCH

    def __init__(self, rules: Sequence[tuple[str, float]] = (), default: float = 0.5, fn: Callable | None = None):
        self.rules = [(re.compile(p), s) for p, s in rules]
        self.default, self.fn = default, fn
        self.calls: list[list[ScoreRequest]] = []

    def step_score(self, step: str) -> float:
        if self.fn is not None:
            return self.fn(step)
        for pat, s in self.rules:
            if pat.fullmatch(step.strip()):
                return s
        return self.default

    def score(self, requests):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            scores, usage = [], []
            for j in range(r.first, len(r.steps)):
                scores.append(self.step_score(r.steps[j]))
                usage.append(Usage(len(r.delimiter.join(r.steps[: j + 1])), len(r.delimiter.join(r.steps[:j]))))
            out.append(StepScores(scores, usage))
        return out

    def estimate_flops(self, context_tokens: int, new_tokens: int, n_steps: int = 1) -> float:
        return n_steps * float(prefill_flops(self.arch, context_tokens + new_tokens, context_tokens))


class FakeTask:
    name = "fake"
    system_prompt = "Solve it."
    chat_stop: tuple[str, ...] = ()
    few_shot_stop: tuple[str, ...] = ()

    def __init__(self, n: int = 1, reference: str = "1"):
        self._qs = [Question(f"q{i}", "fake", "fake", f"What is {i}?", reference) for i in range(n)]

    def questions(self) -> list[Question]:
        return list(self._qs)

    def user_message(self, question: Question) -> str:
        return question.text

    def few_shot_examples(self):
        return []

    def few_shot_format(self, question: Question, answer: str | None) -> str:
        return f"Q: {question.text}\nA:" + (f" {answer}" if answer is not None else "")

    def grade(self, question: Question, completion: str) -> Grade:
        answer = extract_answer(completion)
        return Grade(answer, 1.0 if answer == question.reference else (0.01 if answer else 0.0))


FAKE_MODEL = ResolvedModel(
    name="scripted", path=Path("scripted.gguf"), arch=GEN_ARCH, prompt_style="few_shot", chat_template=None
)
