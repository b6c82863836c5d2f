"""Views derived from the tables, registered by `Store.connect` beside them: what `ttc sql` and the dashboard read.

`data_quality` holds the data-quality figures (backend/metrics/quality.py serves them to the pages and the CLI):
their SQL lives here so that opening a store imports no metrics code."""

from __future__ import annotations

from collections.abc import Sequence

IDENTIFIED = 0.05
"""The 95th percentile of all completion lengths is observed while at most this share is cut (the cut ones are the
longest); beyond it the percentile lies past the cap, where no length was observed."""

MAX_FACTOR = 8
"""The largest multiple of the current cap ever suggested (SUGGESTED_SQL)."""

ONE_IN = round(1 / IDENTIFIED)  # c <= 5 % as an exact integer comparison: 20·cut <= samples
SPEC_MAX_TOKENS = 32768  # RunSpec.max_tokens' upper bound
ROUND_TO = 32
SPEC_DEFAULT_MAX_TOKENS = 256  # RunSpec.max_tokens' default: a spec stored without the field ran with it

RUN_MAX_TOKENS_SQL = (
    "SELECT run_id, coalesce(TRY_CAST(json_extract_string(spec_json, '$.max_tokens') AS INTEGER), "
    f"{SPEC_DEFAULT_MAX_TOKENS}) AS max_tokens FROM runs"
)
"""Each run's `max_tokens`, from its spec in the catalog's `runs` copy (backend.pricing.runs_max_tokens reads the
same field)."""

SUGGESTED_SQL = f"""CASE
    WHEN max_tokens IS NULL OR samples = 0 THEN NULL
    WHEN {ONE_IN} * cut <= samples THEN greatest(ceil(all_p95), 1)
    ELSE least({SPEC_MAX_TOKENS}, ceil(max_tokens * least({MAX_FACTOR}, {ONE_IN} * cut / samples) / {ROUND_TO}) * {ROUND_TO})
END"""
"""The `max_tokens` to suggest (N), from the cap C, the cut share c and the length percentiles.

Censoring: every finished completion is shorter than C, so the 95th percentile of finished completions (M, what
the warning quotes) is below C whatever the model needs, and understates it more the more samples are cut.
- c <= 5 %: the cut samples are the longest c of all, so the 95th percentile of all lengths (cut ones at the cap)
  is observed: N = that percentile (at most C: the cap already covers 95 % of samples).
- c > 5 %: that percentile lies beyond C, where nothing was observed. N assumes the share still running falls no
  faster than 1/length past the cap (a heavy tail, so N errs toward enough tokens): S(x) = c·C/x reaches 5 % at
  x = C·c/0.05, i.e. N = C·min(20c, 8), rounded up to a multiple of 32 and at most the spec's 32768. N is never below
  C, and when half the samples are cut it is 8·C. The bound of 8: a sample cut at several times its question's
  typical length is usually looping, and more tokens will not finish it."""

QUALITY_COLUMNS = (
    "samples",
    "cut",
    "cut_share",
    "no_answer",
    "no_answer_share",
    "grade_errors",
    "grade_error_share",
    "max_tokens",
    "finished_p95",
    "suggested_max_tokens",
)


def quality_sql(keys: Sequence[str], source: str = "samples", caps: str = RUN_MAX_TOKENS_SQL) -> str:
    """The aggregate, grouped by `keys` (columns of `source`), one row per group with QUALITY_COLUMNS.

    - cut: finish_reason = 'length' (the engine stopped at max_tokens);
    - no_answer: not cut and graded, but the answer extracted is NULL or blank (a cut sample has none either: it is
      counted as cut, so the three counts are disjoint unless the checker raised on a cut sample);
    - grade_errors: the task's checker raised (answer and correct are NULL; pools count the sample wrong);
    - max_tokens: the largest of the groups' runs' caps; finished_p95: the 95th percentile (linear interpolation)
      of the completion tokens of samples not cut; suggested_max_tokens: SUGGESTED_SQL."""
    group = ", ".join(keys)
    return f"""
WITH s AS (SELECT * FROM {source} LEFT JOIN ({caps}) USING (run_id)),
g AS (
    SELECT {group},
           count(*) AS samples,
           count(*) FILTER (WHERE finish_reason = 'length') AS cut,
           count(*) FILTER (WHERE finish_reason IS DISTINCT FROM 'length' AND grade_error IS NULL
                                  AND nullif(trim(coalesce(answer, '')), '') IS NULL) AS no_answer,
           count(*) FILTER (WHERE grade_error IS NOT NULL) AS grade_errors,
           max(max_tokens) AS max_tokens,
           quantile_cont(completion_tokens, 0.95) FILTER (WHERE finish_reason IS DISTINCT FROM 'length') AS finished_p95,
           quantile_cont(completion_tokens, 0.95) AS all_p95
    FROM s GROUP BY {group}
)
SELECT {group}, samples,
       cut, cut / samples AS cut_share,
       no_answer, no_answer / samples AS no_answer_share,
       grade_errors, grade_errors / samples AS grade_error_share,
       max_tokens, finished_p95,
       CAST({SUGGESTED_SQL} AS INTEGER) AS suggested_max_tokens
FROM g ORDER BY {group}"""


VIEWS = {"data_quality": quality_sql(["run_id", "model", "dataset"])}
"""name -> SQL of each derived view (they read the catalog's `runs` copy: registered only where it exists).
data_quality: the figures per run × model × dataset."""
