"""Weighted best-of-N: sum the verifier's scores per distinct answer over N samples, keep the largest total."""

from __future__ import annotations

from backend.strategies.base import BaseStrategy
from backend.strategies.best_of_n import sample_pool
from backend.strategies.context import SearchContext
from backend.strategies.params import AGGREGATION, DELIMITER, SAMPLE_TOKENS, TEMPERATURE, N, Param
from backend.strategies.selectors import select


class WeightedBestOfN(BaseStrategy):
    name = "weighted_best_of_n"
    help = "Sample N solutions; the answer with the largest sum of verifier scores wins."
    params: tuple[Param, ...] = (N, SAMPLE_TOKENS, TEMPERATURE, AGGREGATION, DELIMITER)

    def run(self, ctx: SearchContext, cfg: dict) -> None:
        sample_pool(ctx, cfg, scored=True)
        for tree in ctx.trees:
            select(tree.finals, "weighted")
