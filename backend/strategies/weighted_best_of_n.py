"""Weighted best-of-N: sum the verifier's scores per distinct answer over N samples, keep the largest total."""

from __future__ import annotations

from backend.strategies.best_of_n import sample_pool
from backend.strategies.context import SearchContext
from backend.strategies.selectors import select


class WeightedBestOfN:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        sample_pool(ctx, cfg, scored=True)
        for tree in ctx.trees:
            select(tree.finals, "weighted")
