"""Beam search over steps (Snell et al. §5): N beams, width M. Sample N first steps, score them, keep the top
N/M open beams by their aggregated path score (`aggregation`: last, min, product or mean — the setting is
honoured), expand each M times, repeat for at most `max_rounds` rounds; the final answer is the weighted
best-of-N over the finished beams.

With `lookahead` k > 0 every new open step is rolled out k more steps at temperature 0 and the verifier scores
the END of the rollout; the rollout is stored (kind "rollout") but the beam keeps only the candidate's step.
Beam search is lookahead with k = 0. Each round is one engine call for the expansions (+ one per rollout step)
across all questions and beams, and one verifier call, or, with k = 0 on an engine that runs follow-ups inline, each
new step judged on its slot as soon as it is generated (strategies/context.py, "Eager verification")."""

from __future__ import annotations

from pydantic import model_validator

from backend.engines.base import SamplingParams
from backend.options import RuleError
from backend.strategies.context import TOKEN_MARGIN, SearchContext, last_step_of
from backend.strategies.params import (
    Aggregation,
    Beams,
    Delimiter,
    MaxRounds,
    StepTokens,
    StrategyOptions,
    Temperature,
    Width,
)
from backend.strategies.selectors import select
from backend.strategies.tree import Node, is_final_step, path_value


class StepSearchOptions(StrategyOptions):
    """A step-level tree search's parameters (beam search, DVTS)."""

    n: Beams
    width: Width
    max_rounds: MaxRounds
    max_tokens: StepTokens
    delimiter: Delimiter
    aggregation: Aggregation
    temperature: Temperature

    @model_validator(mode="after")
    def _width_divides_n(self):
        # N/M beams (or DVTS subtrees) of width M: checked once every field is valid, as its own rule
        if self.n % self.width != 0 or self.width > self.n:
            raise RuleError("width", f"N={self.n} is not a multiple of width M={self.width}", "a divisor of n")
        return self


def ranked(nodes: list[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: (-(n.value if n.value is not None else 0.0), n.node_id))


def rollout(
    ctx: SearchContext, cands: list[tuple[int, Node]], k: int, max_tokens: int, delimiter: str
) -> dict[int, Node]:
    """Greedy k-step continuations of each candidate, one engine call per step across all candidates.
    Returns id(candidate) -> the tip of its rollout (the candidate itself when nothing was rolled out)."""
    tips = {id(n): n for _, n in cands}
    open_ = list(cands)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0, stop=(delimiter,) + ctx.stop)
    for _ in range(k):
        if not open_:
            break
        exps = [ctx.expansion(qi, tips[id(n)], 1, params, delimiter, tag=(qi, n)) for qi, n in open_]
        still = []
        for e, comps in zip(exps, ctx.generate(exps)):
            qi, cand = e.tag
            for c, cost, _ in comps:
                tip = ctx.add_child(e, c, cost, kind="rollout")
                tips[id(cand)] = tip
                if not is_final_step(c):
                    still.append((qi, cand))
        open_ = still
    return tips


def lookahead_cost(ctx: SearchContext, prompt_tokens: int, k: int, max_tokens: int) -> float:
    """Per candidate: k greedy steps after it, then one verifier pass over the rolled-out text."""
    cost, p = 0.0, prompt_tokens + max_tokens + TOKEN_MARGIN
    for _ in range(k):
        cost += ctx.continuation_cost(p, max_tokens + TOKEN_MARGIN, max_tokens)
        p += max_tokens + TOKEN_MARGIN
    if ctx.verifier is not None:
        cost += ctx.verifier.estimate_flops(prompt_tokens, (k + 1) * (max_tokens + TOKEN_MARGIN), 1)
    return cost


def step_search(ctx: SearchContext, cfg: dict, plan_next) -> None:
    """The loop every step-level tree search shares. `plan_next(qi, new_open, finals) -> [(parent, count)]`
    decides the next round's expansions from this round's open nodes; an empty plan ends the question."""
    n, agg, delim, k = cfg["n"], cfg["aggregation"], cfg["delimiter"], cfg.get("lookahead", 0)
    plans: dict[int, list[tuple[Node, int]]] = {qi: [(t.root, n)] for qi, t in enumerate(ctx.trees)}
    open_leaves: dict[int, list[Node]] = {qi: [] for qi in plans}
    for rnd in range(1, cfg["max_rounds"] + 1):
        params = SamplingParams(
            temperature=cfg["temperature"], max_tokens=cfg["max_tokens"], seed=rnd, stop=(delim,) + ctx.stop
        )
        exps = []
        for qi, plan in plans.items():
            for parent, count in plan:
                e = ctx.expansion(qi, parent, count, params, delim)
                if k > 0:
                    e.score_steps, e.extra_flops = 0, lookahead_cost(ctx, e.prompt_tokens, k, cfg["max_tokens"])
                exps.append(e)
        exps = ctx.trim(exps)
        if not exps:
            break
        ctx.rounds += 1
        new: list[tuple[int, Node]] = []
        # k = 0: every new node's step is what gets scored, so it may be judged as soon as it is generated
        for e, comps in zip(exps, ctx.generate(exps, last_step_of(delim) if k == 0 else None)):
            for c, cost, _ in comps:
                node = ctx.add_child(e, c, cost)
                if is_final_step(c) or rnd == cfg["max_rounds"]:
                    ctx.close(e.qi, node, delim)
                new.append((e.qi, node))
        if k > 0:
            tips = rollout(ctx, [(qi, nd) for qi, nd in new if not nd.is_final], k, cfg["max_tokens"], delim)
            items = [(qi, nd, tips.get(id(nd), nd).steps, len(tips.get(id(nd), nd).steps) - 1) for qi, nd in new]
            for (_, nd), s in zip(new, ctx.score(items, delim)):
                nd.score = s[-1] if s else 0.5
        else:
            ctx.score_last(new, delim)
        for _, nd in new:
            nd.value = path_value(nd, agg)
        plans = {}
        for qi in open_leaves:
            fresh = [nd for q, nd in new if q == qi and not nd.is_final]
            if fresh or any(q == qi for q, _ in new):
                open_leaves[qi] = fresh
            plan = [(p, c) for p, c in plan_next(qi, fresh, ctx.trees[qi].finals) if c > 0] if fresh else []
            if plan:
                plans[qi] = plan
        if not plans:
            break
    for qi, leaves in open_leaves.items():  # budget or rounds ran out: the open beams end here, truncated
        room = n - len(ctx.trees[qi].finals)
        for nd in ranked(leaves)[: max(room, 0)]:
            ctx.close(qi, nd, delim)
    for tree in ctx.trees:
        select(tree.finals, "weighted")


class BeamSearch:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        n, m = cfg["n"], cfg["width"]

        def plan_next(qi: int, fresh: list[Node], finals: list[Node]) -> list[tuple[Node, int]]:
            slots = n - len(finals)
            plan = []
            for parent in ranked(fresh)[: max(1, n // m)]:
                take = min(m, slots)
                if take <= 0:
                    break
                plan.append((parent, take))
                slots -= take
            return plan

        step_search(ctx, cfg, plan_next)
