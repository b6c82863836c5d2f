"""The `SearchContext` through which a strategy generates, verifies and pays, and the `Expansion`, its unit of
generation.

Three rules live here so no strategy can break them:
- **One engine call per round.** A strategy hands `ctx.generate` the expansions of *all* questions and beams of
  a round at once; it becomes one `engine.generate` batch. Verification is one `verifier.score` batch likewise.
- **Prefix reuse.** A child's prompt is its parent's prompt + the parent's step + the delimiter, so each
  round's prompts extend text the engine has just processed and its prefix cache serves them.
- **One ledger.** Every completion and every verifier pass is charged to the question's `Ledger`. Before a
  round, `ctx.trim` prices the planned expansions with `ctx.estimate` and cuts the round's width so the
  estimate fits in `remaining()`.

The ledger's cache model is `backend.ledger.PrefixCache`, one per question: a completion's prompt is charged as
cached up to the longest text this question's search has already processed (an earlier prompt, or an earlier
prompt + its completion) that is a prefix of it. So a child of node P pays only what follows P's context; the
root prompt is paid by its first completion and by no later one; a prompt that extends nothing processed (a
revision prompt with new attempts inside it) pays in full. A verifier running the generator's own model (self-
verification on the same engine) shares that cache: its judge prompt extends the node's context, so it pays for
the judge turn, not the solution again. `estimate` applies the same rule to the texts known before the call, with
upper-bound prompt tokens and `max_tokens` of decode, so it bounds the charge and the budget is a hard limit.
Before the engine has reported a root prompt's token count (in this search, or in the pool's samples of the same
prompt, which the worker passes in), its UTF-8 byte length stands in (a byte-level BPE never has more tokens than
bytes).

**Eager verification.** When the verifier reads the generator's KV cache (`verifier.engine is engine`) and the
engine runs follow-up calls inline on the slot (`runs_follow_ups_inline`), a round may pass `prescore` to `generate`: each completion is then scored from the engine's `on_complete`, on the slot
that has just generated it (engines/threaded.py), and `score` later finds the result instead of sending the judge
prompt to a slot that holds some other text. Results and charges are the same either way; only the cache differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.engines.base import Completion, Engine, GenerationRequest, SamplingParams, runs_follow_ups_inline
from backend.ledger import Ledger, PrefixCache, decode_flops, prefill_flops
from backend.strategies.tree import Node, Tree, split_steps
from backend.tasks.base import Question, Task, grade_or_error
from backend.verifiers.base import ScoreRequest, StepScores, Verifier, charge

TOKEN_MARGIN = 8  # re-tokenising a prompt + step can differ from the engine's counts by a few tokens


@dataclass
class Expansion:
    """`n` completions of `prompt` for question `qi`, children of `parent`."""

    qi: int
    parent: Node
    prompt: str
    n: int
    params: SamplingParams
    prompt_tokens: (
        int  # estimate (upper bound) of the prompt's tokens; what of it is cached is the ledger's PrefixCache's call
    )
    score_steps: int = 1  # verifier passes per completion this round
    tag: Any = None
    extra_flops: float = 0.0  # per completion: later work of the same round (lookahead rollouts, say)


Prescore = Callable[[Expansion, Completion], "tuple[tuple[str, ...], int | None, str] | None"]
"""What a round will score for one completion: (steps, first step to score or None for the last, delimiter)."""


def last_step_of(delimiter: str) -> Prescore:
    """The usual round: each completion becomes a child whose last step (the completion) is scored."""
    return lambda e, c: (e.parent.steps + (c.text,), len(e.parent.steps), delimiter)


def whole_sample_of(delimiter: str, first: int | None, max_steps: int) -> Prescore:
    """Rounds of whole samples: each completion, as `split_steps` cuts it, scored from step `first` (None: the last)."""
    return lambda e, c: (split_steps(c.text, delimiter, max_steps), first, delimiter)


def first_scored(steps: Sequence[str], first: int | None) -> int:
    return max(len(steps) - 1, 0) if first is None else first


def seed_for(run_seed: int, *parts: object) -> int:
    """The one seeding rule (pool samples and search requests alike): a hash of the run's seed and what identifies
    the request, so a resumed or re-run search asks the engine for exactly the same samples."""
    h = hashlib.blake2b("|".join(map(str, (run_seed, *parts))).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


class SearchContext:
    """Everything a strategy may touch while it runs one batch of questions."""

    eager_verification = True  # score completions from on_complete when the verifier reads the generator's cache

    def __init__(
        self,
        engine: Engine,
        task: Task,
        questions: Sequence[Question],
        prompts: Sequence[str],
        verifier: Verifier | None = None,
        budget_flops: float | None = None,
        seed: int = 0,
        stop: tuple[str, ...] = (),
        prompter: Any = None,
        root_tokens: Sequence[int | None] | None = None,
    ):
        self.engine, self.task, self.verifier = engine, task, verifier
        self.arch = engine.arch
        self.questions = list(questions)
        self.trees = [Tree(q, p) for q, p in zip(questions, prompts)]
        self.ledgers = [Ledger(budget_flops) for _ in questions]
        self.seed = seed
        self.stop = tuple(stop)
        self.prompter = prompter
        # each root prompt's token count where the engine has already reported it (the pool's samples of the same
        # prompt); until then its byte length bounds it, which can price a small budget out of its first round
        self.root_tokens: list[int | None] = list(root_tokens) if root_tokens is not None else [None] * len(questions)
        self.caches = [PrefixCache() for _ in questions]  # the ledger's idealised prefix cache, per question
        # a verifier on the generator's own engine reads (and extends) the generator's cache; any other keeps its own
        self.verifier_reads_generator = verifier is not None and getattr(verifier, "engine", None) is engine
        self.eager_verification = (
            self.eager_verification and self.verifier_reads_generator and runs_follow_ups_inline(engine)
        )
        self.verifier_caches = self.caches if self.verifier_reads_generator else [PrefixCache() for _ in questions]
        self._prescored: dict[tuple, list[StepScores]] = {}
        self.prescored_hits = 0
        self.generate_calls = 0
        self.verify_calls = 0
        self.rounds = 0

    # -- token and cost estimates --
    def root_bound(self, qi: int) -> int:
        known = self.root_tokens[qi]
        return known if known is not None else len(self.trees[qi].prompt.encode("utf-8"))

    def child_prompt(self, parent: Node, delimiter: str) -> str:
        if parent.kind == "root":
            return parent.prompt
        return parent.prompt + parent.text + delimiter

    def expansion(
        self, qi: int, parent: Node, n: int, params: SamplingParams, delimiter: str = "", tag: Any = None
    ) -> Expansion:
        """An expansion that continues `parent`'s text (prompt + step + delimiter), priced by the cache model."""
        p = self.root_bound(qi) if parent.kind == "root" else parent.context_tokens + TOKEN_MARGIN
        return Expansion(qi, parent, self.child_prompt(parent, delimiter), n, params, p, tag=tag)

    def estimate(self, exps: Sequence[Expansion]) -> float:
        """Conservative FLOPs of running `exps` (generation + verification of every completion)."""
        total = 0.0
        for e in exps:
            if e.n <= 0:
                continue
            mt = e.params.max_tokens
            # the ledger rule: the prompt's uncached part once (later completions of it find it processed)
            cached = self.caches[e.qi].cached(e.prompt, e.prompt_tokens)
            total += float(prefill_flops(self.arch, e.prompt_tokens, cached))
            total += e.n * float(decode_flops(self.arch, e.prompt_tokens, mt))
            if self.verifier is not None and e.score_steps > 0:
                total += e.n * self.verifier.estimate_flops(e.prompt_tokens, mt + TOKEN_MARGIN, e.score_steps)
            total += e.n * e.extra_flops
        return total

    def continuation_cost(self, prompt_tokens: int, uncached_tokens: int, max_tokens: int) -> float:
        """Estimate of one completion of `max_tokens` after a prompt whose last `uncached_tokens` are new."""
        return float(prefill_flops(self.arch, prompt_tokens, prompt_tokens - uncached_tokens)) + float(
            decode_flops(self.arch, prompt_tokens, max_tokens)
        )

    def trim(self, exps: list[Expansion]) -> list[Expansion]:
        """Cut a round's width (from the end of each question's list: lowest priority first) until its
        estimated cost fits in the question's remaining budget."""
        by_q: dict[int, list[Expansion]] = {}
        for e in exps:
            by_q.setdefault(e.qi, []).append(e)
        out = []
        for qi, mine in by_q.items():
            remaining = self.ledgers[qi].remaining()
            while mine and self.estimate(mine) > remaining:
                mine[-1].n -= 1
                if mine[-1].n <= 0:
                    mine.pop()
            out.extend(mine)
        kept = {id(e) for e in out}
        return [e for e in exps if id(e) in kept and e.n > 0]

    # -- the one engine call of a round --
    def generate(
        self, exps: Sequence[Expansion], prescore: Prescore | None = None
    ) -> list[list[tuple[Completion, float, int]]]:
        """Run every expansion in ONE engine call; charge each completion to its question's ledger.
        Returns, per expansion, (completion, generator FLOPs, completion index).

        `prescore(e, completion) -> (steps, first, delimiter)` names what the strategy will score for each
        completion; with a verifier that reads the generator's cache it is scored as soon as it is generated (see
        the module docstring). A strategy passes it only when it does score every completion of the round."""
        self.flush_prescored()
        exps = [e for e in exps if e.n > 0]
        if not exps:
            return []
        # one request per completion; a question's requests share its root prompt, so they form one affinity
        # group (one engine slot works through them in order). Within a group the prompts go in text order: that is
        # the depth-first order of the question's tree, so siblings are adjacent (each finds its parent cached) and
        # each switch to another beam recomputes only what the two prompts do not share: no order of the group asks
        # a single slot to recompute less
        order = sorted(
            ((ei, k) for ei, e in enumerate(exps) for k in range(e.n)),
            key=lambda t: (exps[t[0]].qi, exps[t[0]].prompt, t[0], t[1]),
        )
        # a request's seed names its question and its place among that question's expansions of the round, never
        # the other questions of the batch: a question's search is the same whichever questions share its batch
        # (a resumed question, a replica's shard of questions, the whole set)
        within: list[int] = []
        seen: dict[int, int] = {}
        for e in exps:
            within.append(seen.get(e.qi, 0))
            seen[e.qi] = within[-1] + 1
        requests = []
        for ei, k in order:
            e = exps[ei]
            seed = seed_for(self.seed, self.questions[e.qi].question_id, e.parent.node_id, e.params.seed, within[ei], k)
            params = SamplingParams(
                e.params.temperature, e.params.top_p, e.params.max_tokens, seed, e.params.stop, e.params.logprobs
            )
            requests.append(GenerationRequest(e.prompt, params, 1, (ei, k), affinity=e.qi))
        on_complete = None
        if prescore is not None and self.eager_verification:
            verifier = self.verifier
            assert verifier is not None, "eager verification is only switched on with a verifier"

            def on_complete(_ri: int, req: GenerationRequest, comps: list[Completion]) -> None:
                e = exps[req.tag[0]]
                target = prescore(e, comps[0]) if comps and comps[0] is not None else None
                if target is not None:
                    steps, first, delim = target
                    steps, first = tuple(steps), first_scored(steps, first)
                    [result] = verifier.score([ScoreRequest(self.questions[e.qi], steps, first, delim)])
                    self._prescored.setdefault((e.qi, steps, first, delim), []).append(result)  # twins: one each

        self.generate_calls += 1
        results = self.engine.generate(requests, on_complete)
        out: list[list[tuple[Completion, float, int]]] = [[] for _ in exps]
        for req, comps in zip(requests, results):
            ei, k = req.tag
            if not comps or comps[0] is None:
                continue
            c = comps[0]
            e = exps[ei]
            cache = self.caches[e.qi]
            cached = cache.cached(e.prompt, c.prompt_tokens)
            cost = self.ledgers[e.qi].charge_generation(self.arch, c.prompt_tokens, cached, c.completion_tokens)
            c = dataclasses.replace(c, ledger_cached_tokens=cached)
            cache.add(e.prompt, c.prompt_tokens)
            cache.add(e.prompt + c.text, c.prompt_tokens + c.completion_tokens)
            if e.parent.kind == "root" and e.prompt == self.trees[e.qi].prompt:
                self.root_tokens[e.qi] = max(self.root_tokens[e.qi] or 0, c.prompt_tokens)
            out[ei].append((c, cost, k))
        for lst in out:
            lst.sort(key=lambda t: t[2])
        return out

    def flush_prescored(self) -> None:
        """Charge verifications made eagerly but never asked for (none, when strategies keep their word) to the
        question's root node, so every FLOP spent is still on the ledger and in the store."""
        if self.verifier is not None:  # only eager verification fills _prescored, and it needs a verifier
            for (qi, *_), results in sorted(self._prescored.items(), key=lambda kv: repr(kv[0])):
                for result in results:
                    root = self.trees[qi].root
                    root.verifier_flops += charge(
                        self.ledgers[qi], self.verifier, result, self.verifier_caches[qi], root.verifier_passes
                    )
        self._prescored.clear()

    def add_child(
        self,
        e: Expansion,
        c: Completion,
        cost: float,
        kind: str = "step",
        steps: tuple[str, ...] | None = None,
        text: str | None = None,
    ) -> Node:
        text = c.text if text is None else text
        parent_steps = e.parent.steps
        return self.trees[e.qi].add(
            e.parent,
            text=text,
            steps=steps if steps is not None else parent_steps + (text,),
            prompt=e.prompt,
            kind=kind,
            prompt_tokens=c.prompt_tokens,
            cached_prompt_tokens=c.cached_prompt_tokens,
            ledger_cached_tokens=c.ledger_cached_tokens,
            completion_tokens=c.completion_tokens,
            finish_reason=c.finish_reason,
            generator_flops=cost,
        )

    # -- the one verifier call of a round --
    def score(
        self, items: Sequence[tuple[int, Node, tuple[str, ...] | None, int | None]], delimiter: str = "\n\n"
    ) -> list[list[float]]:
        """Score (qi, node, steps or None for node.steps, first or None for the last step) in ONE verifier
        call; charge each to its question's ledger and its node. Returns the scores of the requested steps."""
        if self.verifier is None or not items:
            return [[] for _ in items]
        results: list[StepScores | None] = []
        todo: list[tuple[int, ScoreRequest]] = []
        for qi, node, steps, first in items:
            steps = tuple(node.steps if steps is None else steps)
            first = first_scored(steps, first)
            twins = self._prescored.get((qi, steps, first, delimiter))
            done = twins.pop() if twins else None
            self.prescored_hits += done is not None
            results.append(done)
            if done is None:
                todo.append((len(results) - 1, ScoreRequest(self.questions[qi], steps, first, delimiter)))
        if todo:
            self.verify_calls += 1
            for (i, _), r in zip(todo, self.verifier.score([req for _, req in todo])):
                results[i] = r
        out: list[list[float]] = []
        for (qi, node, _, _), res in zip(items, results):  # charged in item order: the ledger does not depend on timing
            assert res is not None, "every item is scored: prescored, or by the verifier call above"
            node.verifier_flops += charge(
                self.ledgers[qi], self.verifier, res, self.verifier_caches[qi], node.verifier_passes
            )
            out.append(res.scores)
        return out

    def score_last(self, items: Sequence[tuple[int, Node]], delimiter: str) -> None:
        """Set node.score to the verifier's score of the node's last step (0.5 without a verifier)."""
        scores = self.score([(qi, n, None, None) for qi, n in items], delimiter)
        for (_qi, n), s in zip(items, scores):
            n.score = s[-1] if s else 0.5

    # -- finishing --
    def close(self, qi: int, node: Node, delimiter: str = "\n\n") -> Node:
        """Mark a node final and grade its whole solution with the task's checker (for analysis only)."""
        node.is_final = True
        grade = grade_or_error(self.task, self.questions[qi], delimiter.join(node.steps))
        node.answer, node.correct, node.grade_error = grade.answer, None if grade.error else grade.correct, grade.error
        return node
