"""Diverse verifier tree search (Beeching et al.): split the N first steps into N/M independent subtrees of
width M; each round every subtree keeps only its best open node and expands it M times. Subtrees never compete
with each other, so the search keeps N/M diverse lines where beam search collapses onto one. Final pick:
weighted best-of-N over all finished leaves."""

from __future__ import annotations

from backend.strategies.beam_search import ranked, step_search
from backend.strategies.context import SearchContext
from backend.strategies.tree import Node


class DVTS:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        n, m = cfg["n"], cfg["width"]

        def subtree(node: Node) -> int:
            return top_rank[id(node.path()[1])] // m

        top_rank: dict[int, int] = {}

        def plan_next(qi: int, fresh: list[Node], finals: list[Node]) -> list[tuple[Node, int]]:
            tree = ctx.trees[qi]
            if not any(id(c) in top_rank for c in tree.nodes if c.parent is tree.root):
                for i, c in enumerate(c for c in tree.nodes if c.parent is tree.root):
                    top_rank[id(c)] = i
            best: dict[int, Node] = {}
            for nd in ranked(fresh):
                best.setdefault(subtree(nd), nd)
            slots, plan = n - len(finals), []
            for nd in ranked(list(best.values())):
                take = min(m, slots)
                if take <= 0:
                    break
                plan.append((nd, take))
                slots -= take
            return plan

        step_search(ctx, cfg, plan_next)
