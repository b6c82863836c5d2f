"""The `Verifier` contract: score a (question, partial or full solution) as one score per step.

A solution is a tuple of steps (text split on the strategy's delimiter). A request may ask for the scores of
`steps[first:]` only: search strategies keep earlier step scores on the tree and score just the new step, so a
round costs one verifier pass per candidate, not one per step of its history. Every call reports the tokens it
read, so the strategy charges it to its FLOPs ledger as verifier compute at the verifier model's size."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from backend.errors import require
from backend.ledger import Ledger, ModelArch, PrefixCache
from backend.tasks.base import Question


@dataclass(frozen=True)
class ScoreRequest:
    question: Question
    steps: tuple[str, ...]
    first: int = 0  # score steps[first:], each given the steps before it
    delimiter: str = "\n\n"


@dataclass(frozen=True)
class Usage:
    """One forward pass of the verifier model, as the ledger charges it."""

    prompt_tokens: int
    cached_prompt_tokens: int = 0  # the engine's report: charged only when `prompt` is not given
    completion_tokens: int = 0
    prompt: str = ""  # the text read: the ledger's PrefixCache decides what of it was cached
    reusable: tuple[str, int] | None = None  # (text, tokens) a later prompt of this verifier may find cached


@dataclass
class StepScores:
    scores: list[float]  # one per step in steps[first:], in [0, 1]
    usage: list[Usage] = field(default_factory=list)


@runtime_checkable
class Verifier(Protocol):
    name: str
    arch: ModelArch | None  # None: free (the oracle); else charged at this model's size

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Score every request in one batched pass; results in request order."""
        ...

    def estimate_flops(self, context_tokens: int, new_tokens: int, n_steps: int = 1) -> float:
        """An upper bound on the cost of scoring `n_steps` new steps (`new_tokens` in all) after a context of
        `context_tokens` generator tokens: what a strategy reserves before a round."""
        ...


def charge(
    ledger: Ledger,
    verifier: Verifier,
    result: StepScores,
    cache: PrefixCache | None = None,
    passes: list[tuple[int, int, int]] | None = None,
) -> float:
    """Charge one scored candidate to the ledger; returns the FLOPs charged. With a `cache` (a search's), a pass
    that names its prompt text is charged by the ledger's prefix rule and its texts join the cache; otherwise the
    engine's cache report is charged. `passes` receives each charged pass as (prompt, cached, completion) tokens:
    what the store keeps so every verifier FLOP is recomputed from tokens (backend.pricing)."""
    if verifier.arch is None:
        return 0.0
    total = 0.0
    for u in result.usage:
        cached = u.cached_prompt_tokens
        if cache is not None and u.prompt:
            cached = cache.cached(u.prompt, u.prompt_tokens)
            cache.add(u.prompt, u.prompt_tokens)
            if u.reusable is not None:
                cache.add(*u.reusable)
        total += ledger.charge_verifier(verifier.arch, u.prompt_tokens, cached, u.completion_tokens)
        if passes is not None:
            passes.append((int(u.prompt_tokens), int(min(cached, u.prompt_tokens)), int(u.completion_tokens)))
    return total


def _product(scores: Sequence[float]) -> float:
    return math.prod(scores)


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "product": _product,
    "mean": lambda s: sum(s) / len(s),
}
"""How a solution's step scores become one score (Snell et al.: last is the default; min and product too)."""


def aggregate(scores: Sequence[float], how: str = "last") -> float:
    fn = require(AGGREGATIONS, how, field="aggregation", kind="aggregation")
    scores = [s for s in scores if s is not None]
    return fn(scores) if scores else 0.0
