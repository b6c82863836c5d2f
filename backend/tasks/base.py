"""The `Task` contract: where questions come from, how a model is asked, how an answer is extracted and graded.

Each task grades with its own checker (reasoning-gym's `score_answer`, math-verify, HumanEval's tests in a
sandbox). `score` keeps the checker's raw value; `correct` is `score == 1.0` (reasoning-gym gives 0.01 to a
present but wrong answer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from store.keys import question_key


@dataclass(frozen=True)
class Question:
    question_id: str
    task: str
    dataset: str
    text: str
    reference: str
    difficulty: dict = field(default_factory=dict)
    level: float | None = None
    payload: Any = field(default=None, compare=False, repr=False)  # what the grader needs (entry, problem)

    @property
    def key(self) -> str:
        """The question's identity (question_key): its id is only a label within its run."""
        return question_key(self.task, self.dataset, self.text, self.reference)


@dataclass(frozen=True)
class Grade:
    answer: str | None
    score: float | None
    error: str | None = None  # the checker raised: answer and score are unknown, and the sample is not correct

    @property
    def correct(self) -> bool:
        return self.error is None and self.score == 1.0


ANSWER_SQL = "nullif(regexp_replace(trim(answer), '\\s+', ' ', 'g'), '')"
"""`normalize_answer` in SQL, for the pools' vectorised votes (backend.metrics.pools); a test holds the two equal."""


def normalize_answer(answer: str | None) -> str | None:
    """How answers are compared in every vote, pool or search: surrounding whitespace dropped, inner runs of it
    collapsed to one space, case kept (some tasks' answers are case-sensitive); empty means no answer."""
    if answer is None:
        return None
    return " ".join(answer.split()) or None


def grade_or_error(task: Task, question: Question, completion: str) -> Grade:
    """The task's grade, or the checker's exception recorded as a grading error: one bad sample (a checker bug on an
    odd answer) must not fail a whole run. The one place samples, search nodes and the oracle verifier are graded."""
    try:
        return task.grade(question, completion)
    except Exception as e:  # noqa: BLE001 - any checker failure is this sample's, not the run's
        return Grade(None, None, f"{type(e).__name__}: {e}"[:500])


@runtime_checkable
class Task(Protocol):
    name: str
    system_prompt: str
    chat_stop: tuple[str, ...]
    few_shot_stop: tuple[str, ...]

    def questions(self) -> list[Question]: ...

    def user_message(self, question: Question) -> str: ...

    def few_shot_examples(self) -> list[tuple[Question, str]]:
        """(question, worked answer) pairs for base models; never drawn from the evaluated questions."""
        ...

    def few_shot_format(self, question: Question, answer: str | None) -> str: ...

    def grade(self, question: Question, completion: str) -> Grade: ...


_ANSWER_MARK = re.compile(r"answer(?:\s+is)?\s*\**\s*[:：]", re.IGNORECASE)
_TAGS = re.compile(r"</?answer>", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, braces balanced."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    i = starts[-1]
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


_MATH_DELIMITERS = re.compile(r"^\\[(\[]\s*(.*?)\s*\\[)\]]$", re.S)


def extract_answer(completion: str) -> str | None:
    """The final answer of a free-text solution: the last "Answer: X" line, else the last \\boxed{X}.

    The default Qwen often ignores the requested "Answer:" line and writes \\boxed{}, so both (docs/ARCHITECTURE.md,
    "Facts the design rests on")."""
    marks = list(_ANSWER_MARK.finditer(completion))
    if marks:  # the text after the last "Answer:" (also "the final answer is: Answer: 5"), to the end of its line
        rest = completion[marks[-1].end() :].split("\n", 1)[0]
        ans = _TAGS.sub("", rest).strip().strip("*").strip().strip("$").strip()
        boxed = _last_boxed(ans)
        ans = (boxed if boxed is not None else ans).rstrip(".").strip()
        ans = _MATH_DELIMITERS.sub(r"\1", ans).strip()  # "Answer: \(-4\)" -> "-4"
        if ans:
            return ans
    boxed = _last_boxed(completion)
    if boxed:
        return boxed
    return None
