"""Budget forcing (s1, Muennighoff et al.): control how long the model thinks. A chain that stops before its
thinking cap is made to go on: the end is suppressed by appending "Wait" and generating again, up to
`extensions` times. A chain that reaches the cap without an answer is cut there and made to answer
("Answer:" appended, `answer_tokens` more). `n` chains run in parallel; one engine call per round across all
chains and questions; the pick is by majority (or the verifier)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.engines.base import SamplingParams
from backend.strategies.context import TOKEN_MARGIN, Expansion, SearchContext
from backend.strategies.params import StrategyOptions, Temperature
from backend.strategies.selectors import select
from backend.tasks.base import extract_answer

ANSWER_CUE = "\n\nAnswer:"


class BudgetForcingOptions(StrategyOptions):
    n: int = Field(1, ge=1, le=1024, description="parallel chains, each forced on its own")
    thinking_tokens: int = Field(
        512, ge=1, le=32768, description="cap on a chain's thinking tokens (all extensions together)"
    )
    extensions: int = Field(2, ge=0, le=16, description="times a chain that stops early is made to continue")
    wait_word: str = Field("Wait", description="text appended to suppress the end of thinking")
    answer_tokens: int = Field(32, ge=1, le=1024, description="tokens allowed for the forced answer after the cap")
    temperature: Temperature
    select: Literal["majority", "weighted", "best"] = Field("majority", description="final pick among the chains")


class BudgetForcing:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        # chain state: (tip, thinking tokens used, extensions used, what to do next)
        chains = {qi: [(t.root, 0, 0, "think")] * cfg["n"] for qi, t in enumerate(ctx.trees)}
        rnd = 0
        verifier = ctx.verifier if cfg["select"] != "majority" else None  # the one that scores, if any
        scored = verifier is not None
        while True:
            rnd += 1
            exps = self._next_expansions(ctx, chains, cfg, rnd, verifier)
            planned = {(e.qi, e.tag[0]) for e in exps}
            exps = ctx.trim(exps)
            kept = {(e.qi, e.tag[0]) for e in exps}
            for qi, ci in planned - kept:  # the budget ran out for this chain: it ends where it is
                tip, used, ext, _ = chains[qi][ci]
                chains[qi][ci] = (tip, used, ext, "done")
            if not exps:
                break
            ctx.rounds += 1
            new = self._advance(ctx, chains, cfg, exps)
            if scored:
                ctx.score_last(new, "")
        for qi, states in chains.items():
            for tip, *_ in states:
                if tip.kind != "root":
                    ctx.close(qi, tip, "")
                    tip.value = tip.score
        for tree in ctx.trees:
            select(tree.finals, cfg["select"] if scored else "majority")

    @staticmethod
    def _next_expansions(ctx: SearchContext, chains: dict, cfg: dict, rnd: int, verifier) -> list[Expansion]:
        """Every unfinished chain's next segment: its first thinking from the root, else the wait word (think on, up
        to the cap) or the answer cue appended to what it wrote."""
        cap = cfg["thinking_tokens"]
        exps = []
        for qi, states in chains.items():
            for ci, (tip, used, _ext, todo) in enumerate(states):
                if todo == "done":
                    continue
                if tip.kind == "root":
                    params = SamplingParams(cfg["temperature"], max_tokens=cap, seed=rnd, stop=ctx.stop)
                    exps.append(ctx.expansion(qi, tip, 1, params, tag=(ci, "")))
                    continue
                cue = f"\n{cfg['wait_word']}" if todo == "think" else ANSWER_CUE
                mt = cap - used if todo == "think" else cfg["answer_tokens"]
                params = SamplingParams(cfg["temperature"], max_tokens=max(mt, 1), seed=rnd, stop=ctx.stop)
                cue_tokens = len(cue.encode("utf-8"))
                p = tip.context_tokens + cue_tokens + TOKEN_MARGIN
                e = Expansion(qi, tip, tip.prompt + tip.text + cue, 1, params, p, tag=(ci, cue))
                e.score_steps = 0
                if verifier is not None:  # the verifier reads the cue and the new text
                    e.extra_flops = verifier.estimate_flops(p, params.max_tokens + cue_tokens + TOKEN_MARGIN, 1)
                exps.append(e)
        for e in exps:
            if e.parent.kind == "root":
                e.score_steps = 1 if verifier is not None else 0
        return exps

    @staticmethod
    def _advance(ctx: SearchContext, chains: dict, cfg: dict, exps: list[Expansion]) -> list:
        """Generate the round, add each segment to its chain's tree and decide the chain's next move: answer after
        the answer cue; at the thinking cap, answer (unless the text already holds one); else think on while
        extensions are left."""
        cap = cfg["thinking_tokens"]
        new = []
        for e, comps in zip(exps, ctx.generate(exps)):
            ci, cue = e.tag
            tip, used, ext, todo = chains[e.qi][ci]
            for c, cost, _ in comps:
                segment = cue + c.text  # the solution is the concatenation of its segments
                kind = "answer" if cue == ANSWER_CUE else "extension" if cue else "step"
                node = ctx.add_child(e, c, cost, kind=kind, steps=tip.steps + (segment,))
                new.append((e.qi, node))
                used += c.completion_tokens if cue != ANSWER_CUE else 0
                if cue == ANSWER_CUE:
                    nxt = "done"
                elif c.finish_reason == "length" or used >= cap:
                    nxt = "done" if extract_answer("".join(node.steps)) is not None else "answer"
                else:
                    nxt = "think" if ext < cfg["extensions"] else "done"
                chains[e.qi][ci] = (node, used, ext + (1 if cue and cue != ANSWER_CUE else 0), nxt)
        return new
