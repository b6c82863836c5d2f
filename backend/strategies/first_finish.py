"""First Finish Search: launch n samples at once and keep the first to finish — the finished sample with the
fewest tokens (ties: the lowest index). Shorter traces are more often right (Agarwal et al.). No verifier.

The engine runs every sample to its end (the Engine protocol has no cancel-in-flight), so the ledger charges
all n; an engine that cancels the rest once the first finishes would cost less."""

from __future__ import annotations

from backend.strategies.best_of_n import sample_pool
from backend.strategies.context import SearchContext


class FirstFinish:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        sample_pool(ctx, cfg, scored=False)
        for tree in ctx.trees:
            finals = tree.finals
            finished = [f for f in finals if f.finish_reason != "length"] or finals
            if finished:
                min(finished, key=lambda f: (f.completion_tokens, f.node_id)).selected = True
