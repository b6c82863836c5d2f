"""What `ttc serve` answered, read back from the store for the Serving page, and the labels a user gives its answers.

Grouping: the server writes each answered request as its own run (name `served`, backend/serving/runtime.py
`_write`: its question, its search trees in `nodes`, its decision in the run's spec). The write path is kept as it
is; readers group instead: one log row per (request, choice), grouped by the policy version that answered it, so
the catalog's many small runs read as one served log per policy. Served runs hold no `samples`, so no analysis
pool ever includes them (and backend/run_selection.py leaves them out of default selections by name).

Labels: a user marks a served answer correct or incorrect; the mark is a catalog row (`served_labels`,
store/migrations.m014_served_labels) keyed by (request run, choice). An unlabelled answer has no row and counts in
no accuracy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import inspect, text

import store.catalog as catalogs
from backend.errors import SpecError
from store import Store
from store.catalog import SERVED
from store.migrations import apply_migrations

CHOICES_JSON = (
    '[{"seed": "BIGINT", "bin": "INTEGER", "configuration": "VARCHAR", "cell_budget_flops": "DOUBLE", '
    '"flops": "DOUBLE", "held_out_accuracy": "DOUBLE", "promise_low": "DOUBLE", "promise_high": "DOUBLE"}]'
)
"""The shape of a served run's `spec.served.choices` (runtime.py `_write`; requests served before the promise was
recorded read NULL for its three fields)."""

REQUESTS_SQL = f"""
WITH req AS (
    SELECT run_id, created_at,
           spec_json->>'$.served.policy' AS policy,
           spec_json->>'$.served.endpoint' AS endpoint,
           TRY_CAST(spec_json->>'$.served.budget_flops' AS DOUBLE) AS budget_flops,
           TRY_CAST(spec_json->>'$.served.seconds' AS DOUBLE) AS latency_s,
           from_json(spec_json->'$.served.choices', '{CHOICES_JSON}') AS choices
    FROM runs WHERE name = '{SERVED}' AND status = 'done'
), chosen AS (
    SELECT run_id, created_at, policy, endpoint, budget_flops, latency_s,
           unnest(range(len(choices))) AS choice, unnest(choices) AS c
    FROM req
), calls AS (
    SELECT run_id, CAST(config->>'$.choice' AS INTEGER) AS choice,
           sum(CASE WHEN kind <> 'root' THEN prompt_tokens ELSE 0 END)
             + sum(coalesce(list_sum(verifier_pass_prompt_tokens), 0)) AS prompt_tokens,
           sum(CASE WHEN kind <> 'root' THEN completion_tokens ELSE 0 END)
             + sum(coalesce(list_sum(verifier_pass_completion_tokens), 0)) AS completion_tokens,
           count(*) FILTER (WHERE kind <> 'root') AS samples,
           max(answer) FILTER (WHERE selected AND config->>'$.served' = 'answer') AS answer,
           max(step_text) FILTER (WHERE selected AND config->>'$.served' = 'answer') AS answer_text
    FROM nodes WHERE run_id IN (SELECT run_id FROM req) GROUP BY ALL
)
SELECT chosen.run_id, chosen.choice, chosen.created_at AS time, chosen.policy, q.question, chosen.endpoint,
       chosen.budget_flops, c.flops AS flops, c.bin AS bin, c.configuration AS configuration,
       c.cell_budget_flops AS cell_budget_flops, c.held_out_accuracy AS held_out_accuracy,
       c.promise_low AS promise_low, c.promise_high AS promise_high, c.seed AS seed, calls.answer, calls.answer_text, chosen.latency_s,
       calls.prompt_tokens, calls.completion_tokens, calls.samples
FROM chosen
LEFT JOIN calls USING (run_id, choice)
LEFT JOIN (SELECT DISTINCT ON (run_id) run_id, question FROM questions) q USING (run_id)
ORDER BY chosen.created_at, chosen.run_id, chosen.choice"""
"""One row per (served request, choice): when, by which policy, the question, the budget asked, the FLOPs the
choice's pilot and cell charged (the ledger's), the predicted bin, the configuration, the selected answer, the
request's latency and the choice's usage (prompt tokens as each call read them, verifier passes included, as the
response's `usage` counts them)."""

LOG_COLUMNS = [
    "run_id",
    "choice",
    "time",
    "policy",
    "question",
    "endpoint",
    "budget_flops",
    "flops",
    "bin",
    "configuration",
    "cell_budget_flops",
    "held_out_accuracy",
    "promise_low",
    "promise_high",
    "seed",
    "answer",
    "answer_text",
    "latency_s",
    "prompt_tokens",
    "completion_tokens",
    "samples",
    "correct",
]


def _has_labels_table(store: Store) -> bool:
    # a catalog opened read-only is not migrated: an older one has no labels table, and so no labels
    return "served_labels" in inspect(store.catalog).get_table_names()


def labels(store: Store) -> pd.DataFrame:
    """The labels given: run_id, choice, correct (bool)."""
    if not _has_labels_table(store):
        return pd.DataFrame({"run_id": [], "choice": [], "correct": []})
    with store.catalog.connect() as db:
        rows = db.execute(text("SELECT run_id, choice, correct FROM served_labels ORDER BY run_id, choice")).all()
    return pd.DataFrame(
        {"run_id": [r[0] for r in rows], "choice": [int(r[1]) for r in rows], "correct": [bool(r[2]) for r in rows]}
    )


def served_log(store: Store) -> pd.DataFrame:
    """REQUESTS_SQL's rows with each answer's label (`correct`: True, False, or None when unlabelled)."""
    con = store.connect()
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "runs" not in tables:  # a shard-only handle: no catalog, no served runs
            return pd.DataFrame({c: [] for c in LOG_COLUMNS})
        log = con.execute(REQUESTS_SQL).df()
    finally:
        con.close()
    given = labels(store)
    log["choice"] = log["choice"].astype(int)
    if len(given):
        log = log.merge(given, on=["run_id", "choice"], how="left")
        log["correct"] = log["correct"].astype(object).where(log["correct"].notna(), None)
    else:
        log["correct"] = pd.Series([None] * len(log), dtype=object)
    return log[LOG_COLUMNS]


def set_label(store: Store, run_id: str, choice: int, correct: bool | None) -> None:
    """Mark served answer (`run_id`, `choice`) correct or incorrect; None removes its label. Refuses an answer the
    store did not serve, before writing anything."""
    run = store.get_run(run_id)
    if run is None or run["name"] != SERVED:
        raise SpecError("run_id", f"{run_id!r} is not a served request in this store", "a served request's run id")

    count = len(json.loads(run["spec_json"]).get("served", {}).get("choices", []))
    if not 0 <= choice < count:
        raise SpecError("choice", f"{choice} is not one of this request's choices", f"0 to {count - 1}")
    with store.catalog.begin() as db:
        apply_migrations(db)  # the dashboard opens a store without migrating it: the labels table may be new
        db.execute(text("DELETE FROM served_labels WHERE run_id = :r AND choice = :c"), {"r": run_id, "c": choice})
        if correct is not None:
            db.execute(
                text("INSERT INTO served_labels(run_id, choice, correct, labelled_at) VALUES (:r, :c, :k, :t)"),
                {"r": run_id, "c": choice, "k": int(bool(correct)), "t": catalogs.now(db)},
            )


TOTALS_COLUMNS = (
    "policy",
    "requests",
    "answers",
    "flops",
    "flops_per_budget",
    "prompt_tokens",
    "completion_tokens",
    "latency_p50_s",
    "latency_p95_s",
    "labelled",
)
"""`totals`' columns, in order, empty log or not."""


def totals(log: pd.DataFrame) -> pd.DataFrame:
    """Per policy version: requests, answers (choices), FLOPs charged, their share of the budgets asked (over the
    answers that gave a budget), prompt and completion tokens, latency p50/p95 (per request) and labelled answers."""
    if log.empty:
        return pd.DataFrame(columns=list(TOTALS_COLUMNS))
    budgeted = log[log["budget_flops"].notna()]
    share = (budgeted.groupby("policy")["flops"].sum() / budgeted.groupby("policy")["budget_flops"].sum()).rename(
        "flops_per_budget"
    )
    per_request = log.drop_duplicates("run_id").groupby("policy")["latency_s"]
    out = log.groupby("policy").agg(
        requests=("run_id", "nunique"),
        answers=("run_id", "size"),
        flops=("flops", "sum"),
        prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"),
        labelled=("correct", lambda s: int(s.notna().sum())),
    )
    out = out.join(share).join(per_request.quantile(0.5).rename("latency_p50_s"))
    out = out.join(per_request.quantile(0.95).rename("latency_p95_s"))
    return out.reset_index()[list(TOTALS_COLUMNS)]


Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: two-sided 95 %

ACCURACY_COLUMNS = [
    "policy",
    "bin",
    "configuration",
    "cell_budget_flops",
    "labelled",
    "correct",
    "accuracy",
    "low",
    "high",
    "held_out_accuracy",
    "promise_low",
    "promise_high",
    "drift",
]


def wilson_interval(correct, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a binomial proportion (Wilson 1927, "Probable inference, the law of succession,
    and statistical inference", JASA 22: the p whose normal test at `z` does not reject k of n): centre
    (p̂ + z²/2n) / (1 + z²/n), half-width z·sqrt(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n). Unlike p̂ ± z·se it stays in
    [0, 1] and is not empty at 0 or n successes, which a handful of labelled answers often are."""
    k, n = np.asarray(correct, dtype=float), np.asarray(n, dtype=float)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def labelled_accuracy(log: pd.DataFrame) -> pd.DataFrame:
    """Per served cell (policy, bin, configuration, cell budget) with at least one labelled answer: labelled count,
    correct count, accuracy (correct / labelled) and its 95 % Wilson interval, beside what the study promised of the
    cell (its held-out accuracy and bootstrap band, recorded with each answer). `drift` is True when the labelled
    interval and the promise's band do not overlap (against the point promise where the study computed no band),
    None where the cell has no promise recorded. Unlabelled answers count nowhere."""
    lab = log[log["correct"].notna()]
    if lab.empty:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    lab = lab.assign(correct=lab["correct"].astype(bool).astype(int))
    keys = ["policy", "bin", "configuration", "cell_budget_flops"]
    out = lab.groupby(keys, dropna=False).agg(
        labelled=("correct", "size"),
        correct=("correct", "sum"),
        held_out_accuracy=("held_out_accuracy", "first"),
        promise_low=("promise_low", "first"),
        promise_high=("promise_high", "first"),
    )
    out["accuracy"] = out["correct"] / out["labelled"]
    out["low"], out["high"] = wilson_interval(out["correct"], out["labelled"])
    p_lo = out["promise_low"].fillna(out["held_out_accuracy"])
    p_hi = out["promise_high"].fillna(out["held_out_accuracy"])
    apart = (out["high"] < p_lo) | (out["low"] > p_hi)
    out["drift"] = apart.astype(object).where(out["held_out_accuracy"].notna(), None)
    return out.reset_index()[ACCURACY_COLUMNS]
