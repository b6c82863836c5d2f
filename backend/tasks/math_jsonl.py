"""Questions from a JSONL file in MATH format (`problem`, `answer`, optional `level`, `subject`), graded with
math-verify so `\\frac{1}{2}`, `0.5` and `\\boxed{1/2}` agree."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Literal

from pydantic import Field

from backend.errors import TaskError
from backend.options import KindOptions
from backend.tasks.base import Grade, Question, extract_answer


class MathJsonlSuite(KindOptions):
    kind: Literal["math_jsonl"] = "math_jsonl"
    path: str = Field(description="a JSONL file: problem, answer, optional level, subject, id")
    size: int | None = Field(None, gt=0, description="the first N lines")


INSTRUCTION = (
    "Solve the problem step by step. Put the final answer in \\boxed{} and also on a last line 'Answer: <answer>'."
)


def _level(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.search(r"\d+(\.\d+)?", str(value))
    return float(m.group()) if m else None


class MathJsonlTask:
    name = "math_jsonl"
    system_prompt = "You are a careful mathematician."
    chat_stop: tuple[str, ...] = ()
    few_shot_stop: tuple[str, ...] = ("\nProblem:",)

    def __init__(self, path: str, size: int | None = None, field: str = "task.path"):
        p = Path(path).expanduser()
        allowed = "a JSONL file, one object per line with 'problem' and 'answer' (optional 'level', 'subject', 'id')"
        if p.is_dir():
            raise TaskError(f"{field}: {str(p)!r} is a directory; allowed: {allowed}")
        if not p.is_file():
            raise TaskError(f"{field}: JSONL file {str(p)!r} does not exist; allowed: {allowed}")
        self.path = p
        self._rows = []
        seen: dict[str, int] = {}  # question id -> the line that gave it first
        with open(p, encoding="utf-8", errors="surrogateescape") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:  # an undecodable byte came back as a lone surrogate
                    raise TaskError(f"{p}:{lineno}: not UTF-8 text; allowed: {allowed}") from None
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TaskError(f"{p}:{lineno}: not valid JSON ({e.msg}); allowed: {allowed}") from None
                if not isinstance(row, dict):
                    raise TaskError(f"{p}:{lineno}: not a JSON object; allowed: {allowed}")
                for key in ("problem", "answer"):
                    if key not in row or row[key] in (None, ""):
                        raise TaskError(
                            f"{p}:{lineno}: missing required field '{key}'; each line needs 'problem' and 'answer' (optional 'level', 'subject', 'id')"
                        )
                qid = str(row.get("id", f"{p.stem}/{lineno}"))
                if qid in seen:
                    raise TaskError(
                        f"{p}:{lineno}: id {qid!r} is already used on line {seen[qid]}; allowed: a distinct 'id' per "
                        "line, or none (the line number is the id)"
                    )
                seen[qid] = lineno
                self._rows.append((lineno, row))
        if not self._rows:
            raise TaskError(f"{p}: no questions (the file is empty); allowed: {allowed}")
        if size is not None:
            self._rows = self._rows[:size]

    def questions(self) -> list[Question]:
        return [
            Question(
                question_id=str(row.get("id", f"{self.path.stem}/{lineno}")),
                task=self.name,
                dataset=str(row.get("subject", self.path.stem)),
                text=str(row["problem"]),
                reference=str(row["answer"]),
                difficulty={k: row[k] for k in ("level", "subject") if k in row},
                level=_level(row.get("level")),
                payload=row,
            )
            for lineno, row in self._rows
        ]

    def user_message(self, question: Question) -> str:
        return f"{question.text}\n\n{INSTRUCTION}"

    def few_shot_examples(self) -> list[tuple[Question, str]]:
        return [
            (
                Question("shot", self.name, "", "What is $3 \\cdot 4 - 5$?", "7"),
                "$3 \\cdot 4 = 12$ and $12 - 5 = 7$. Answer: 7",
            ),
            (
                Question("shot", self.name, "", "Simplify $\\frac{6}{8}$.", "\\frac{3}{4}"),
                "Divide by 2: $\\frac{3}{4}$. Answer: \\frac{3}{4}",
            ),
        ]

    def few_shot_format(self, question: Question, answer: str | None) -> str:
        return f"Problem: {question.text}\nSolution:" + (f" {answer}" if answer is not None else "")

    def grade(self, question: Question, completion: str) -> Grade:
        return grade_math(question.reference, completion)


def grade_math(reference: str, completion: str) -> Grade:
    """A free-text solution against a MATH reference answer: the final answer (`extract_answer`) and the reference
    are equal by math-verify. Also how `ttc import search_and_learn` grades completions that came without verdicts."""
    from math_verify import parse, verify

    answer = extract_answer(completion)
    if answer is None:
        return Grade(None, 0.0)
    # math-verify's own timeout is signal.alarm, which raises off the main thread: the worker grades on its shard
    # writer's thread, where every sample would be graded wrong. There it runs without the alarm.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${reference}$", parsing_timeout=timeout)
        pred = parse(f"${answer}$", parsing_timeout=timeout)
        ok = bool(gold and pred and verify(gold, pred, timeout_seconds=timeout))
    except Exception:
        ok = False
    return Grade(answer, 1.0 if ok else 0.0)
