"""The task's own grader as a verifier: 1.0 when the solution up to a step grades correct, else 0.0.

It sees the reference answer, so it is for analysis and an explicit oracle baseline only, never a default
selector. It costs no FLOPs (no model runs)."""

from __future__ import annotations

from collections.abc import Sequence

from backend.ledger import ModelArch
from backend.tasks.base import Task, grade_or_error
from backend.verifiers.base import ScoreRequest, StepScores


class OracleVerifier:
    name = "oracle"
    arch: ModelArch | None = None

    def __init__(self, task: Task):
        self.task = task

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        out = []
        for r in requests:
            scores = []
            for j in range(r.first, len(r.steps)):
                grade = grade_or_error(self.task, r.question, r.delimiter.join(r.steps[: j + 1]))
                scores.append(1.0 if grade.correct else 0.0)
            out.append(StepScores(scores))
        return out

    def estimate_flops(self, context_tokens: int, new_tokens: int, n_steps: int = 1) -> float:
        return 0.0
