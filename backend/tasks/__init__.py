"""Task suites behind one `Task` protocol (backend/tasks/base.py), one registry keyed by the spec's `task.kind`.
A factory takes the validated suite spec and the run's seed."""

from __future__ import annotations

from collections.abc import Callable

from backend.errors import require
from backend.tasks.base import Grade, Question, Task, extract_answer


def _reasoning_gym(suite, seed: int) -> Task:
    from backend.tasks.reasoning_gym_task import ReasoningGymTask

    return ReasoningGymTask([d.model_dump() for d in suite.datasets], seed=seed)


def _humaneval(suite, seed: int) -> Task:
    from backend.tasks.humaneval import HumanEvalTask

    return HumanEvalTask(size=suite.size, ids=suite.ids, timeout_s=suite.timeout_s)


def _math_jsonl(suite, seed: int) -> Task:
    from backend.tasks.math_jsonl import MathJsonlTask

    return MathJsonlTask(suite.path, size=suite.size)


TASKS: dict[str, Callable] = {"reasoning_gym": _reasoning_gym, "humaneval": _humaneval, "math_jsonl": _math_jsonl}


def create_task(suite, seed: int = 0) -> Task:
    return require(TASKS, suite.kind, field="task.kind", kind="task")(suite, seed)


__all__ = ["TASKS", "Grade", "Question", "Task", "create_task", "extract_answer"]
