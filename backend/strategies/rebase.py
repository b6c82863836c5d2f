"""REBASE, reward-balanced search (Wu et al., "Inference Scaling Laws"): each round the remaining width
B = N − (finished leaves) is shared out among the open nodes in proportion to softmax(reward / T), rounded by
largest remainder; a node with a low reward may get no children at all, a strong one several. Final pick:
weighted best-of-N."""

from __future__ import annotations

import math

from pydantic import Field

from backend.strategies.beam_search import ranked, step_search
from backend.strategies.context import SearchContext
from backend.strategies.params import (
    Aggregation,
    Beams,
    Delimiter,
    MaxRounds,
    StepTokens,
    StrategyOptions,
    Temperature,
)
from backend.strategies.tree import Node


class RebaseOptions(StrategyOptions):
    n: Beams
    max_rounds: MaxRounds
    max_tokens: StepTokens
    delimiter: Delimiter
    aggregation: Aggregation
    temperature: Temperature
    softmax_temperature: float = Field(
        0.2, ge=1e-3, le=100.0, description="T of softmax(reward / T) that shares the width out (lower = greedier)"
    )


def allocate(values: list[float], budget: int, temperature: float) -> list[int]:
    """Split `budget` expansions by softmax(values / T), largest remainder; ties to the earlier node."""
    if budget <= 0 or not values:
        return [0] * len(values)
    top = max(values)
    w = [math.exp((v - top) / temperature) for v in values]
    shares = [budget * x / sum(w) for x in w]
    counts = [int(math.floor(s)) for s in shares]
    for i in sorted(range(len(values)), key=lambda i: (-(shares[i] - counts[i]), i))[: budget - sum(counts)]:
        counts[i] += 1
    return counts


class Rebase:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        def plan_next(qi: int, fresh: list[Node], finals: list[Node]) -> list[tuple[Node, int]]:
            order = ranked(fresh)
            counts = allocate([nd.value or 0.0 for nd in order], cfg["n"] - len(finals), cfg["softmax_temperature"])
            return [(nd, c) for nd, c in zip(order, counts) if c > 0]

        step_search(ctx, cfg, plan_next)
