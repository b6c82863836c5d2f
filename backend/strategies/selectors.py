"""How a strategy picks its final answer among finished candidates: best score, weighted vote (scores summed per
answer) or majority. Answers are compared by the one rule every vote uses (tasks.base.normalize_answer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from backend.strategies.tree import Node
from backend.tasks.base import normalize_answer


def pick_best(finals: Sequence[Node]) -> Node | None:
    return max(finals, key=lambda n: (n.value if n.value is not None else 0.0, -n.node_id), default=None)


def pick_weighted(finals: Sequence[Node]) -> Node | None:
    """Weighted best-of-N: sum the (aggregated) scores per distinct answer, take the largest; within it the
    best-scored node. Candidates without an answer only win when no candidate has one."""
    answered = [n for n in finals if normalize_answer(n.answer) is not None] or list(finals)
    totals: dict[str | None, float] = {}
    for n in answered:
        totals[normalize_answer(n.answer)] = totals.get(normalize_answer(n.answer), 0.0) + (n.value or 0.0)
    if not totals:
        return None
    first_seen = {k: min(n.node_id for n in answered if normalize_answer(n.answer) == k) for k in totals}
    win = max(totals, key=lambda k: (totals[k], -first_seen[k]))
    return pick_best([n for n in answered if normalize_answer(n.answer) == win])


def pick_majority(finals: Sequence[Node]) -> Node | None:
    answered = [n for n in finals if normalize_answer(n.answer) is not None] or list(finals)
    counts: dict[str | None, int] = {}
    for n in answered:
        counts[normalize_answer(n.answer)] = counts.get(normalize_answer(n.answer), 0) + 1
    if not counts:
        return None
    first_seen = {k: min(n.node_id for n in answered if normalize_answer(n.answer) == k) for k in counts}
    win = max(counts, key=lambda k: (counts[k], -first_seen[k]))
    return min((n for n in answered if normalize_answer(n.answer) == win), key=lambda n: n.node_id)


SELECTORS: dict[str, Callable[[Sequence[Node]], Node | None]] = {
    "weighted": pick_weighted,
    "best": pick_best,
    "majority": pick_majority,
}


def select(finals: Sequence[Node], how: str) -> Node | None:
    node = SELECTORS[how](finals)
    if node is not None:
        node.selected = True
    return node
