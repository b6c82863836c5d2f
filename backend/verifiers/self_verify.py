"""Self-verification: a language model reads the solution so far and is asked whether the last step is correct;
the step's score is P(Yes) / (P(Yes) + P(No)) from the first answer token's logprobs.

Runs on the CPU models. The judge prompt is the generator's own prompt + the solution + a judge suffix, so it
*extends* the text the generator has just processed: the engine's prefix cache serves everything up to the suffix,
and the ledger (a search's `PrefixCache`, which this verifier shares when it runs on the generator's engine) charges
only the suffix and any step not yet read. Two suffixes (`JUDGES`):
- "inline" (the default): the question written on in the model's own answer, "\n\nIs the last step correct?
  Answer:", 9 tokens. On CPU the suffix is the whole cost of a judge whose solution is cached (compute-bound
  prefill), and beam search judges every step. On 160 arithmetic samples of the default model
  (bench/verifier_quality.py) it ranks correct answers above wrong ones with AUROC 0.67–0.70, the chat turn 0.46–0.50;
  shorter suffixes tried lose the signal (0.43–0.58, BENCHMARKS.md).
- "chat": the end of the assistant's turn, the question as a user turn and the start of the answer, exactly as the
  model's chat template writes them (~21 tokens on Qwen); for larger chat models trained to judge in a turn.
Each pass reports its prompt text and, as reusable, the text before the suffix (its tokens: the pass's minus
`turn_bound()`, an upper bound of the suffix's tokens, so the reuse is never overstated), which a later judge of a
longer solution extends. The bound is measured once per verifier (the engine's token count of the suffix alone, plus
a margin for merges at its boundary: one tiny uncharged call, like loading the model); the budget estimate uses it
too, so it bounds what is charged with any tokenizer. All steps of all candidates of a round go to the engine in ONE
`generate` call with `max_tokens=1` (or each from the generator's callback when judging is eager)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from backend.errors import require
from backend.ledger import decode_flops, prefill_flops
from backend.models.registry import ResolvedModel
from backend.prompting import build_prompt, chat_messages, chat_template_in_use, render_chat
from backend.tasks.base import Question, Task
from backend.verifiers.base import ScoreRequest, StepScores, Usage

JUDGE_QUESTION = "Is the last step correct? Answer Yes or No."  # the chat judge's user turn
INLINE_JUDGE = "\n\nIs the last step correct? Answer:"  # the inline judge: the answer token follows "Answer:"
JUDGES = ("inline", "chat")
YES = frozenset({"yes", "y", "true", "correct"})
NO = frozenset({"no", "n", "false", "incorrect", "wrong"})
BOUNDARY_TOKENS = 8  # tokens a BPE may merge differently where the judge turn meets the solution
_SENTINEL = "\x00solution\x00"
TOP_K = 20


def p_yes(completion: Completion) -> float:
    """P(Yes) normalised against P(No), from the chosen token and its top alternatives; 0.5 if neither shows."""
    if not completion.logprobs:
        word = completion.text.strip().lower()
        return 1.0 if word in YES else 0.0 if word in NO else 0.5
    first = completion.logprobs[0]
    probs: dict[str, float] = dict(first.top)
    probs.setdefault(first.token, first.logprob)
    yes = sum(math.exp(lp) for tok, lp in probs.items() if tok.strip().lower() in YES)
    no = sum(math.exp(lp) for tok, lp in probs.items() if tok.strip().lower() in NO)
    return yes / (yes + no) if yes + no > 0 else 0.5


class SelfVerifier:
    def __init__(self, engine: Engine, model: ResolvedModel, task: Task, judge: str = "inline"):
        require(dict.fromkeys(JUDGES), judge, field="judge", kind="self-verification judge")
        self.engine, self.model, self.task, self.judge = engine, model, task, judge
        self.name = "self_verify" if judge == "inline" else f"self_verify_{judge}"
        self.arch = engine.arch
        self.calls = 0
        self.turn = self.judge_turn()  # the same text after every solution: rendered once
        self._turn_bound: int | None = None

    def judge_turn(self) -> str:
        """What follows the solution. Inline: the judge question written on in the answer. Chat, for a chat model:
        the template's own end of the assistant turn + the judge question as a user turn + the generation prompt
        (read off a render with a placeholder solution)."""
        if self.judge == "inline":
            return INLINE_JUDGE
        template = chat_template_in_use(self.model)
        if template is not None:
            messages = chat_messages(self.task, "?", ("assistant", _SENTINEL), ("user", JUDGE_QUESTION))
            rendered = render_chat(template, messages)
            if _SENTINEL in rendered:
                return rendered.split(_SENTINEL, 1)[1]
        return f"\n\nQuestion: {JUDGE_QUESTION}\nAnswer:"

    def judge_prompt(self, question: Question, solution: str) -> str:
        return build_prompt(self.model, self.task, question) + solution + self.turn

    def turn_bound(self) -> int:
        """Upper bound on the judge turn's tokens in any judge prompt (measured once, see the module docstring)."""
        if self._turn_bound is None:
            [[c]] = self.engine.generate([self._calibration()])
            return self._learn_turn_bound(c)
        return self._turn_bound

    def _calibration(self) -> GenerationRequest:
        return GenerationRequest(
            self.turn, SamplingParams(temperature=0.0, max_tokens=1, seed=0, logprobs=TOP_K), tag=None
        )

    def _learn_turn_bound(self, calibration: Completion) -> int:
        self._turn_bound = bound = int(calibration.prompt_tokens) + BOUNDARY_TOKENS
        return bound

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        params = SamplingParams(temperature=0.0, max_tokens=1, seed=0, logprobs=TOP_K)
        batch, owner = [], []
        for ri, r in enumerate(requests):
            head = build_prompt(self.model, self.task, r.question)
            for j in range(r.first, len(r.steps)):
                context = head + r.delimiter.join(r.steps[: j + 1])
                # a question's judges share its prompt: one slot takes them in order (engines/threaded.py)
                batch.append(
                    GenerationRequest(context + self.turn, params, tag=context, affinity=r.question.question_id)
                )
                owner.append(ri)
        out = [StepScores([]) for _ in requests]
        if not batch:
            return out
        self.calls += 1
        calibrate = self._turn_bound is None  # measured in the same engine call as the first judges
        results = self.engine.generate(batch + [self._calibration()] if calibrate else batch)
        bound = self._learn_turn_bound(results[-1][0]) if calibrate else self.turn_bound()
        for ri, req, comps in zip(owner, batch, results):
            c = comps[0]
            out[ri].scores.append(p_yes(c))
            reusable = (req.tag, max(0, c.prompt_tokens - bound))
            out[ri].usage.append(
                Usage(c.prompt_tokens, c.cached_prompt_tokens, c.completion_tokens, req.prompt, reusable)
            )
        return out

    def estimate_flops(self, context_tokens: int, new_tokens: int, n_steps: int = 1) -> float:
        """Bound on judging `n_steps` new steps (`new_tokens` in all) of a solution whose first `context_tokens`
        the search has processed (the ledger finds them cached): the new text and a judge turn per step are read."""
        turn = self.turn_bound()
        prompt = context_tokens + new_tokens + turn * n_steps
        uncached = new_tokens + turn * n_steps
        return float(prefill_flops(self.arch, prompt, prompt - uncached)) + n_steps * float(
            decode_flops(self.arch, prompt, 1)
        )
