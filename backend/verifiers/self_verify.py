"""Self-verification: a language model reads the solution so far and is asked "Is the last step correct?
Answer Yes or No."; the step's score is P(Yes) / (P(Yes) + P(No)) from the first answer token's logprobs.

Runs on the CPU models. The verification prompt extends the generator's own prompt (question, then the
solution as the assistant's turn, then the question about it), so with the same model the engine's prefix cache
serves everything up to the new step. All steps of all candidates of a round go to the engine in ONE
`generate` call with `max_tokens=1`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from backend.ledger import decode_flops, prefill_flops
from backend.models.registry import ResolvedModel
from backend.prompting import build_prompt, render_chat
from backend.tasks.base import Question, Task
from backend.verifiers.base import ScoreRequest, StepScores, Usage

JUDGE_QUESTION = "Is the last step of the solution above correct? Answer Yes or No."
YES = frozenset({"yes", "y", "true", "correct"})
NO = frozenset({"no", "n", "false", "incorrect", "wrong"})
SUFFIX_TOKENS = 48  # upper bound on the judge turn's tokens (chat tags + JUDGE_QUESTION), for budget estimates
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
    name = "self_verify"

    def __init__(self, engine: Engine, model: ResolvedModel, task: Task):
        self.engine, self.model, self.task = engine, model, task
        self.arch = engine.arch
        self.calls = 0

    def judge_prompt(self, question: Question, solution: str) -> str:
        if self.model.prompt_style == "chat" and self.model.chat_template:
            messages = [
                {"role": "system", "content": self.task.system_prompt},
                {"role": "user", "content": self.task.user_message(question)},
                {"role": "assistant", "content": solution},
                {"role": "user", "content": JUDGE_QUESTION},
            ]
            return render_chat(self.model.chat_template, messages)
        return f"{build_prompt(self.model, self.task, question)}{solution}\n\nQuestion: {JUDGE_QUESTION}\nAnswer:"

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        params = SamplingParams(temperature=0.0, max_tokens=1, seed=0, logprobs=TOP_K)
        batch, owner = [], []
        for ri, r in enumerate(requests):
            for j in range(r.first, len(r.steps)):
                batch.append(GenerationRequest(self.judge_prompt(r.question, r.delimiter.join(r.steps[: j + 1])), params))
                owner.append(ri)
        out = [StepScores([]) for _ in requests]
        if not batch:
            return out
        self.calls += 1
        for ri, comps in zip(owner, self.engine.generate(batch)):
            c = comps[0]
            out[ri].scores.append(p_yes(c))
            out[ri].usage.append(Usage(c.prompt_tokens, c.cached_prompt_tokens, c.completion_tokens))
        return out

    def estimate_flops(self, context_tokens: int, new_tokens: int, n_steps: int = 1) -> float:
        prompt = context_tokens + new_tokens + SUFFIX_TOKENS * n_steps
        uncached = new_tokens + SUFFIX_TOKENS * n_steps
        return float(prefill_flops(self.arch, prompt, prompt - uncached)) + n_steps * float(decode_flops(self.arch, prompt, 1))
