"""Sequential revisions (Snell et al. §6): `chains` parallel chains of `chain_length` attempts; each attempt
is a whole solution written with (at most) the last `context_attempts` ≤ 4 attempts of its chain in the prompt.
The final answer is picked by the verifier (best within each chain, then weighted across the chains' winners)
or by majority over every attempt. Each round is one engine call for every chain of every question; the
question text stays at the front of the prompt so the prefix cache keeps serving it."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import Field

from backend.engines.base import SamplingParams
from backend.models.registry import ResolvedModel
from backend.prompting import build_prompt, chat_messages, chat_template_in_use, render_chat
from backend.strategies.context import TOKEN_MARGIN, Expansion, SearchContext, whole_sample_of
from backend.strategies.params import Aggregation, Delimiter, SampleTokens, StrategyOptions, Temperature
from backend.strategies.selectors import pick_best, pick_majority, pick_weighted
from backend.strategies.tree import MAX_SCORED_STEPS, Node, split_steps
from backend.tasks.base import Question, Task
from backend.verifiers.base import aggregate

MAX_CONTEXT_ATTEMPTS = 4
MAX_CHAINS = 1024
MAX_CHAIN_LENGTH = 64
ATTEMPT_OVERHEAD_TOKENS = 16  # "Attempt k:" header and blank lines, per attempt (estimate)
REVISION_OVERHEAD_TOKENS = 48  # the revision instruction


class SequentialRevisionsOptions(StrategyOptions):
    chains: int = Field(
        2, ge=1, le=MAX_CHAINS, description="parallel chains (the parallel side of the sequential:parallel ratio)"
    )
    chain_length: int = Field(
        4, ge=1, le=MAX_CHAIN_LENGTH, description="attempts per chain, the first included (the sequential side)"
    )
    context_attempts: int = Field(
        4, ge=1, le=MAX_CONTEXT_ATTEMPTS, description="previous attempts of the chain shown in each revision prompt"
    )
    max_tokens: SampleTokens
    temperature: Temperature
    select: Literal["verifier", "majority"] = Field(
        "verifier", description="final pick: verifier (within, then across chains) or majority over all attempts"
    )
    aggregation: Aggregation
    delimiter: Delimiter


class Prompter:
    """Revision prompts: the task's own prompt, with the chain's previous attempts after the question."""

    def __init__(self, model: ResolvedModel, task: Task):
        self.model, self.task = model, task

    def revision(self, question: Question, attempts: list[str]) -> str:
        if not attempts:
            return build_prompt(self.model, self.task, question)
        block = "\n\n".join(f"Attempt {i}:\n{a.strip()}" for i, a in enumerate(attempts, 1))
        extra = (
            f"\n\nYour previous attempts (they may contain mistakes):\n\n{block}\n\nWrite a new, corrected solution."
        )
        template = chat_template_in_use(self.model)
        if template is not None:
            return render_chat(template, chat_messages(self.task, self.task.user_message(question) + extra))
        return build_prompt(self.model, self.task, dataclasses.replace(question, text=question.text + extra))


def split_attempts(n_attempts: int, ratio: str) -> tuple[int, int]:
    """(chain_length, chains) for a budget of `n_attempts` split at sequential:parallel `ratio` 'S:P' (Snell §6):
    chain_length / chains ≈ S/P with chain_length · chains <= n_attempts; '1:0' is one chain of every attempt,
    '0:1' as many chains of one attempt (best-of-N through the revision prompt)."""
    seq, par = (int(x) for x in ratio.split(":"))
    n = max(1, int(n_attempts))
    length = n if par == 0 else max(1, min(n, round((n * seq / par) ** 0.5)))
    return length, max(1, n // length)


def chain_attempts(node: Node, window: int) -> list[Node]:
    return [n for n in node.path() if n.kind == "revision"][-window:]


class SequentialRevisions:
    def ratio_config(self, cfg: dict, n_attempts: int, ratio: str) -> dict:
        """The configuration of one point of a sequential:parallel sweep at a budget of `n_attempts`."""
        length, chains = split_attempts(n_attempts, ratio)
        return {**cfg, "chain_length": min(length, MAX_CHAIN_LENGTH), "chains": min(chains, MAX_CHAINS)}

    def run(self, ctx: SearchContext, cfg: dict) -> None:
        agg, delim, window = cfg["aggregation"], cfg["delimiter"], cfg["context_attempts"]
        scored = ctx.verifier is not None and cfg["select"] == "verifier"
        tips: dict[int, list[Node | None]] = {qi: [t.root] * cfg["chains"] for qi, t in enumerate(ctx.trees)}
        for rnd in range(1, cfg["chain_length"] + 1):
            params = SamplingParams(
                temperature=cfg["temperature"], max_tokens=cfg["max_tokens"], seed=rnd, stop=ctx.stop
            )
            exps = []
            for qi, chain_tips in tips.items():
                for ci, tip in enumerate(chain_tips):
                    if tip is None:
                        continue
                    shown = chain_attempts(tip, window)
                    prompt = ctx.prompter.revision(ctx.questions[qi], [a.text for a in shown])
                    if not shown:
                        e = ctx.expansion(qi, tip, 1, params, tag=ci)
                        e.prompt = prompt
                    else:
                        body = sum(a.completion_tokens + ATTEMPT_OVERHEAD_TOKENS for a in shown)
                        p = ctx.root_bound(qi) + REVISION_OVERHEAD_TOKENS + body + TOKEN_MARGIN
                        e = Expansion(qi, tip, prompt, 1, params, p, tag=ci)
                    e.score_steps = (1 if agg == "last" else MAX_SCORED_STEPS) if scored else 0
                    exps.append(e)
            exps = ctx.trim(exps)
            if not exps:
                break
            ctx.rounds += 1
            kept = {(e.qi, e.tag) for e in exps}
            for qi in tips:
                tips[qi] = [t if (qi, ci) in kept else None for ci, t in enumerate(tips[qi])]
            new = []
            first = None if agg == "last" else 0
            for e, comps in zip(
                exps, ctx.generate(exps, whole_sample_of(delim, first, MAX_SCORED_STEPS) if scored else None)
            ):
                for c, cost, _ in comps:
                    node = ctx.add_child(
                        e, c, cost, kind="revision", steps=split_steps(c.text, delim, MAX_SCORED_STEPS)
                    )
                    ctx.close(e.qi, node, delim)
                    tips[e.qi][e.tag] = node
                    new.append((e.qi, node))
            if scored:
                scores = ctx.score([(qi, nd, None, first) for qi, nd in new], delim)
                for (_, nd), s in zip(new, scores):
                    nd.value = nd.score = aggregate(s, agg) if s else 0.5
        for tree in ctx.trees:
            finals = tree.finals
            if not scored:
                pick = pick_majority(finals)
            else:
                chains = [c for c in tree.nodes if c.parent is tree.root]
                winners = [pick_best([f for f in finals if f.path()[1] is c]) for c in chains]
                pick = pick_weighted([w for w in winners if w is not None])
            if pick is not None:
                pick.selected = True
