"""Sample pools as dense arrays: the input of every pool metric.

"Generate once, analyse many": a sampling run stores N samples per question, and every curve for k <= N is
computed from that pool. One SQL query pulls a selection out of the store, numbering questions and sample
positions and coding answers with window functions; numpy then scatters the rows into (questions × samples)
arrays. Pools may be ragged (a question with fewer samples): `valid` marks the real cells and `n` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np


@dataclass(frozen=True)
class Pool:
    """One model's samples for a set of questions, as (Q, N) arrays; cells with valid=False are padding."""

    question_ids: np.ndarray  # (Q,) str
    tasks: np.ndarray  # (Q,) str
    valid: np.ndarray  # (Q, N) bool
    correct: np.ndarray  # (Q, N) bool, False on padding
    answer_id: np.ndarray  # (Q, N) int32: code of the normalised answer within its question, -1 = no answer
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # verifier -> (Q, N) float, NaN if missing
    prompt_tokens: np.ndarray | None = None  # (Q, N) float, 0 on padding
    cached_prompt_tokens: np.ndarray | None = None
    completion_tokens: np.ndarray | None = None
    prefill_flops: np.ndarray | None = None  # (Q, N) float, NaN where not recorded
    decode_flops: np.ndarray | None = None
    flops: np.ndarray | None = None
    model: str = ""

    @property
    def n(self) -> np.ndarray:
        """Samples per question."""
        return self.valid.sum(axis=1)

    @property
    def n_correct(self) -> np.ndarray:
        return (self.correct & self.valid).sum(axis=1)

    @property
    def n_questions(self) -> int:
        return int(self.valid.shape[0])

    def score(self, verifier: str) -> np.ndarray:
        """The (Q, N) scores of one verifier; ValueError listing the loaded ones."""
        try:
            return self.scores[verifier]
        except KeyError:
            known = ", ".join(sorted(self.scores)) or "none loaded"
            raise ValueError(f"verifier {verifier!r} is not in this pool; allowed: {known}") from None

    def subset(self, questions) -> "Pool":
        """The pool restricted to some questions (bool mask or indices)."""
        from backend.metrics.curve import check_questions_mask

        m = check_questions_mask(questions, self.n_questions)
        opt = lambda a: None if a is None else a[m]  # noqa: E731
        return Pool(
            question_ids=self.question_ids[m],
            tasks=self.tasks[m],
            valid=self.valid[m],
            correct=self.correct[m],
            answer_id=self.answer_id[m],
            scores={k: v[m] for k, v in self.scores.items()},
            prompt_tokens=opt(self.prompt_tokens),
            cached_prompt_tokens=opt(self.cached_prompt_tokens),
            completion_tokens=opt(self.completion_tokens),
            prefill_flops=opt(self.prefill_flops),
            decode_flops=opt(self.decode_flops),
            flops=opt(self.flops),
            model=self.model,
        )


def pool_from_arrays(
    correct,
    answer_id=None,
    scores: dict | None = None,
    *,
    valid=None,
    question_ids=None,
    completion_tokens=None,
    prompt_tokens=None,
) -> Pool:
    """Build a Pool from plain (Q, N) arrays (tests, synthetic data). answer_id defaults to the correct flag."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError(f"correct must be a (questions, samples) array, got shape {correct.shape}")
    q, n = correct.shape
    valid = np.ones((q, n), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if answer_id is None:
        answer_id = np.where(correct, 0, 1)
    answer_id = np.where(valid, np.asarray(answer_id), -1).astype(np.int32)
    scores = {k: np.where(valid, np.asarray(v, dtype=np.float64), np.nan) for k, v in (scores or {}).items()}
    for name, arr in scores.items():
        if arr.shape != (q, n):
            raise ValueError(f"scores[{name!r}] has shape {arr.shape}; expected {(q, n)}")
    ids = np.asarray([f"q{i}" for i in range(q)] if question_ids is None else question_ids, dtype=object)
    zeros = np.zeros((q, n))
    return Pool(
        question_ids=ids,
        tasks=np.full(q, "", dtype=object),
        valid=valid,
        correct=correct & valid,
        answer_id=answer_id,
        scores=scores,
        prompt_tokens=zeros if prompt_tokens is None else np.asarray(prompt_tokens, dtype=np.float64),
        cached_prompt_tokens=zeros,
        completion_tokens=zeros if completion_tokens is None else np.asarray(completion_tokens, dtype=np.float64),
        prefill_flops=np.full((q, n), np.nan),
        decode_flops=np.full((q, n), np.nan),
        flops=np.full((q, n), np.nan),
    )


def list_verifiers(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], model: str) -> list[str]:
    """Verifier names that scored any sample of the selection."""
    rows = con.execute(
        "SELECT DISTINCT verifier FROM scores WHERE list_contains(?, run_id) AND model = ? ORDER BY verifier",
        [list(run_ids), model],
    ).fetchall()
    return [r[0] for r in rows]


def load_pool(
    con: duckdb.DuckDBPyConnection,
    run_ids: str | Sequence[str],
    model: str,
    *,
    task: str | None = None,
    strategy: str | None = None,
    verifiers: str | Sequence[str] | None = None,
) -> Pool:
    """Load one model's sample pools from the store's `samples` and `scores` views in one SQL query.

    Questions are identified by (task, question_id) and numbered by dense_rank; samples of several runs of
    the same question are concatenated in (run_id, sample_idx) order. Answers are compared after trimming and
    collapsing whitespace; a NULL or empty answer gets code -1 (it can never win a vote). `verifiers=None`
    loads every verifier that scored the selection; a string or list loads just those."""
    runs = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    if not runs:
        raise ValueError("run_ids is empty; give at least one run id")
    if verifiers is None:
        names = list_verifiers(con, runs, model)
    else:
        names = [verifiers] if isinstance(verifiers, str) else list(verifiers)
    where = ["list_contains($runs, s.run_id)", "s.model = $model"]
    params: dict = {"runs": runs, "model": model}
    if task is not None:
        where.append("s.task = $task")
        params["task"] = task
    if strategy is not None:
        where.append("s.strategy = $strategy")
        params["strategy"] = strategy
    score_cols, score_join = "", ""
    if names:
        pivots = []
        for j, name in enumerate(names):
            params[f"v{j}"] = name
            pivots.append(f"max(score) FILTER (WHERE verifier = $v{j}) AS v{j}")
            score_cols += f", coalesce(sc.v{j}, 'NaN'::DOUBLE) AS v{j}"
        params["vnames"] = names
        score_join = f"""
        LEFT JOIN (
            SELECT run_id, question_id, sample_idx, {", ".join(pivots)}
            FROM scores
            WHERE list_contains($runs, run_id) AND model = $model AND list_contains($vnames, verifier)
            GROUP BY run_id, question_id, sample_idx
        ) sc ON sc.run_id = s.run_id AND sc.question_id = s.question_id AND sc.sample_idx = s.sample_idx"""
    sql = f"""
    WITH sel AS (
        SELECT s.*, nullif(regexp_replace(trim(s.answer), '\\s+', ' ', 'g'), '') AS norm_answer {score_cols}
        FROM samples s {score_join}
        WHERE {" AND ".join(where)}
    )
    SELECT
        (dense_rank() OVER (ORDER BY task, question_id) - 1)::INTEGER AS q,
        (row_number() OVER (PARTITION BY task, question_id ORDER BY run_id, sample_idx) - 1)::INTEGER AS i,
        task, question_id,
        coalesce(correct, false) AS correct,
        CASE WHEN norm_answer IS NULL THEN -1
             ELSE dense_rank() OVER (PARTITION BY task, question_id ORDER BY norm_answer) - 1 END::INTEGER AS a,
        coalesce(prompt_tokens, 0)::DOUBLE AS prompt_tokens,
        coalesce(cached_prompt_tokens, 0)::DOUBLE AS cached_prompt_tokens,
        coalesce(completion_tokens, 0)::DOUBLE AS completion_tokens,
        coalesce(prefill_flops, 'NaN'::DOUBLE) AS prefill_flops,
        coalesce(decode_flops, 'NaN'::DOUBLE) AS decode_flops,
        coalesce(flops, 'NaN'::DOUBLE) AS flops
        {"".join(f", v{j}" for j in range(len(names)))}
    FROM sel
    """
    table = con.sql(sql, params=params).to_arrow_table()
    if table.num_rows == 0:
        sel = f"run_ids={runs}, model={model!r}" + (f", task={task!r}" if task else "")
        raise ValueError(f"no samples match {sel}; check the run ids, model and task")
    q = table.column("q").to_numpy()
    i = table.column("i").to_numpy()
    n_q, n_max = int(q.max()) + 1, int(i.max()) + 1

    def dense(col: str, fill, dtype):
        out = np.full((n_q, n_max), fill, dtype=dtype)
        out[q, i] = table.column(col).to_numpy(zero_copy_only=False)
        return out

    valid = np.zeros((n_q, n_max), dtype=bool)
    valid[q, i] = True
    firsts = table.filter(np.asarray(i == 0))
    order = np.argsort(firsts.column("q").to_numpy())
    return Pool(
        question_ids=np.asarray(firsts.column("question_id").to_pylist(), dtype=object)[order],
        tasks=np.asarray(firsts.column("task").to_pylist(), dtype=object)[order],
        valid=valid,
        correct=dense("correct", False, bool),
        answer_id=dense("a", -1, np.int32),
        scores={name: dense(f"v{j}", np.nan, np.float64) for j, name in enumerate(names)},
        prompt_tokens=dense("prompt_tokens", 0.0, np.float64),
        cached_prompt_tokens=dense("cached_prompt_tokens", 0.0, np.float64),
        completion_tokens=dense("completion_tokens", 0.0, np.float64),
        prefill_flops=dense("prefill_flops", np.nan, np.float64),
        decode_flops=dense("decode_flops", np.nan, np.float64),
        flops=dense("flops", np.nan, np.float64),
        model=model,
    )
