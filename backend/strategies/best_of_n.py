"""Best-of-N: sample N whole solutions in one batch, score each with the verifier, keep the highest score."""

from __future__ import annotations

from backend.engines.base import SamplingParams
from backend.strategies.context import SearchContext, whole_sample_of
from backend.strategies.selectors import select
from backend.strategies.tree import MAX_SCORED_STEPS, split_steps
from backend.verifiers.base import aggregate


def sample_pool(ctx: SearchContext, cfg: dict, scored: bool) -> None:
    """One round: N samples per question (cut to the budget), each closed as a final candidate and, if
    `scored`, scored by the verifier (all its steps unless the aggregation only needs the last)."""
    agg, delim = cfg.get("aggregation", "last"), cfg.get("delimiter", "\n\n")
    params = SamplingParams(temperature=cfg["temperature"], max_tokens=cfg["max_tokens"], seed=0, stop=ctx.stop)
    exps = []
    for qi, tree in enumerate(ctx.trees):
        e = ctx.expansion(qi, tree.root, cfg["n"], params)
        e.score_steps = (1 if agg == "last" else MAX_SCORED_STEPS) if scored else 0
        exps.append(e)
    exps = ctx.trim(exps)
    ctx.rounds += 1
    nodes = []
    first = None if agg == "last" else 0
    for e, comps in zip(exps, ctx.generate(exps, whole_sample_of(delim, first, MAX_SCORED_STEPS) if scored else None)):
        for c, cost, _ in comps:
            node = ctx.add_child(e, c, cost, steps=split_steps(c.text, delim, MAX_SCORED_STEPS))
            ctx.close(e.qi, node, delim)
            nodes.append((e.qi, node))
    if scored:
        scores = ctx.score([(qi, n, None, first) for qi, n in nodes], delim)
        for (_, n), s in zip(nodes, scores):
            n.value = n.score = aggregate(s, agg) if s else 0.5


class BestOfN:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        sample_pool(ctx, cfg, scored=True)
        for tree in ctx.trees:
            select(tree.finals, "best")
