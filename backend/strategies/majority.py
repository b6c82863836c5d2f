"""Majority vote (self-consistency): sample N solutions, the most frequent answer wins. No verifier."""

from __future__ import annotations

from backend.strategies.best_of_n import sample_pool
from backend.strategies.context import SearchContext
from backend.strategies.selectors import select


class Majority:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        sample_pool(ctx, cfg, scored=False)
        for tree in ctx.trees:
            select(tree.finals, "majority")
