"""Which runs an analysis pools when the user has not chosen: the analysis pages and `ttc compute-optimal` call
`default_runs` (the one home of the rule), and say what it left out.

A comparable selection, not every run of the store:
- the *reference* is the newest run that finished (status `done`, or `imported`) and is not adaptive;
- the default is every such run whose questions (their keys, store/keys.question_key) are exactly the
  reference's: other models or more samples of the same study, not a run of other knobs whose ids look the same;
- left out, each with its reason: runs that did not finish (cancelled, failed, still running: their pools are
  partial), served requests (`ttc serve`: each a run of one question the policy chose a configuration for, not a
  pool; their own view is the Serving page), adaptive runs (optional stopping: their samples are not exchangeable, and their own view is the Run
  page's allocation), and runs of other questions. The user may add any of them back.

A run found in the shards but not in the catalog (a shard-only handle, a hand-made store) counts as finished."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import pandas as pd

from backend.execution.allocation import adaptive_run_ids
from backend.metrics.pools import KEY_OR_LABEL_SQL
from store.catalog import SERVED
from store.imports import IMPORTED, IMPORTING

RUN_QUESTIONS_SQL = f"""
SELECT run_id, md5(string_agg(DISTINCT {KEY_OR_LABEL_SQL}, ',' ORDER BY {KEY_OR_LABEL_SQL})) AS question_set
FROM samples GROUP BY run_id ORDER BY run_id"""
"""Per run with samples, a fingerprint of the set of its questions' keys."""

FINISHED = "done"
REASONS = {
    IMPORTING: "partial: being imported",
    "cancelled": "cancelled",
    "failed": "failed",
    "running": "partial: still running",
    "queued": "partial: queued",
}


@dataclass(frozen=True)
class DefaultRuns:
    run_ids: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]  # (run_id, why), in run order

    def caption(self, selected: Iterable[str] = ()) -> str:
        """One line naming the runs left out (and not added back since), or '' when there are none, or when the
        selection no longer holds the default runs (a link or the user chose other runs: the default's reasons,
        "other questions than <a run not shown>", would then explain nothing on the page)."""
        chosen = set(selected)
        if not set(self.run_ids) <= chosen:
            return ""
        parts = [f"{r} ({why})" for r, why in self.left_out if r not in chosen]
        if not parts:
            return ""
        return "Left out by default, add them under Runs to include them: " + ", ".join(parts) + "."


def default_runs(run_questions: pd.DataFrame, catalog: pd.DataFrame | None, adaptive: Iterable[str]) -> DefaultRuns:
    """The rule of the module docstring. `run_questions`: RUN_QUESTIONS_SQL's rows; `catalog`: the catalog's runs
    (run_id, status, created_at and, when known, name) or None; `adaptive`: the adaptive runs (backend/execution/allocation.ADAPTIVE_SQL)."""
    runs = run_questions[["run_id", "question_set"]].copy()
    if catalog is not None and len(catalog):
        cols = ["run_id", "status", "created_at"] + (["name"] if "name" in catalog.columns else [])
        runs = runs.merge(catalog[cols], on="run_id", how="left")
    else:
        runs = runs.assign(status=None, created_at=None)
    if "name" not in runs.columns:
        runs["name"] = None
    runs["status"] = runs["status"].fillna(FINISHED)
    runs["created_at"] = runs["created_at"].fillna("")
    runs = runs.sort_values(["created_at", "run_id"]).reset_index(drop=True)
    adaptive = set(adaptive)
    why: dict[str, str] = {}
    for r, status, name in zip(runs["run_id"], runs["status"], runs["name"]):
        if name == SERVED:
            why[r] = "served requests: read them on the Serving page"
        elif status not in (FINISHED, IMPORTED):
            why[r] = REASONS.get(status, status)
        elif r in adaptive:
            why[r] = "adaptive: not an exchangeable pool, read it on the Run page"
    eligible = runs[~runs["run_id"].isin(list(why))]
    chosen: list[str] = []
    if len(eligible):
        reference = eligible.iloc[-1]
        same = eligible["question_set"] == reference["question_set"]
        chosen = sorted(eligible.loc[same, "run_id"])
        for r in eligible.loc[~same, "run_id"]:
            why[r] = f"other questions than {reference['run_id']}"
    order = list(runs["run_id"])
    return DefaultRuns(tuple(chosen), tuple((r, why[r]) for r in order if r in why))


def default_runs_of(con: duckdb.DuckDBPyConnection) -> DefaultRuns:
    """`default_runs` over a store connection (Store.connect: its `runs` table is the catalog's, when it has one)."""
    questions = con.execute(RUN_QUESTIONS_SQL).df()
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    catalog = con.execute("SELECT run_id, status, created_at, name FROM runs").df() if "runs" in tables else None
    return default_runs(questions, catalog, adaptive_run_ids(con, questions["run_id"].tolist()))
