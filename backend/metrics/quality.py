"""Data quality of a selection of samples: how many were cut at `max_tokens`, have no extracted answer, or could not
be graded, and the `max_tokens` that would let them finish.

Why every analysis reads this first: a sample cut at `max_tokens` (finish_reason = 'length') usually has no answer
and counts as wrong, so when many are cut, accuracy, coverage and every strategy comparison measure where the model
is cut off, not how a strategy trades compute for accuracy. The figures are one DuckDB aggregate over the `samples`
view (store/views.py's quality_sql, which holds the rule for the suggested max_tokens), served to the pages, `ttc compute-optimal`, `ttc run`'s summary and, as the `data_quality`
view, to `ttc sql`.

Which samples count: the sampling pools (the `samples` table), whose `max_tokens` is the run's spec's. Search nodes
have their own per-step `max_tokens` (a strategy parameter); their truncation is not counted here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd
from scipy.stats import binom

from backend.errors import SpecError
from store.views import RUN_MAX_TOKENS_SQL, quality_sql

THRESHOLD = 0.10
"""A share of cut, unanswered or ungraded samples above this warns (pages, `ttc compute-optimal`, `ttc run`)."""

EVIDENCE = 0.05
"""A group warns only where its count is unlikely under a true share at the threshold: the one-sided binomial
P(X ≥ count | samples, threshold) is below this. Without it a bin of 16 samples with 2 cut (13 %) warned on a study
4 % cut overall; 3 of 8 (38 %) still warns, 2 of 16 does not."""


def check_threshold(threshold: float, field: str = "threshold") -> float:
    if not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
        raise SpecError(field, f"{threshold!r}", "a share between 0 and 1 (exclusive), e.g. 0.1 for 10 %")
    return float(threshold)


@dataclass(frozen=True)
class DataQuality:
    """The figures of one selection and the warnings they raise at `threshold`."""

    table: pd.DataFrame  # model, dataset[, bin], QUALITY_COLUMNS
    threshold: float
    warnings: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.warnings)

    def summary(self) -> str:
        """One line over the whole selection (the `ttc run` summary and the strip's caption)."""
        t = self.table
        n = int(t["samples"].sum())
        if n == 0:
            return "data quality: no samples"
        parts = [
            f"{int(t[c].sum())} of {n} ({t[c].sum() / n:.0%}) {what}"
            for c, what in (("cut", "cut at max_tokens"), ("no_answer", "finished without an answer"))
        ]
        errors = int(t["grade_errors"].sum())
        parts.append(f"{errors} grading error(s)")
        caps = t["max_tokens"].dropna().unique()
        cap = f" (max_tokens = {int(caps[0])})" if len(caps) == 1 else ""
        return "data quality: " + ", ".join(parts) + cap

    def lines(self) -> list[str]:
        """One line per group: its counts and shares (`ttc compute-optimal`'s stderr)."""
        return [
            f"{_group(r)}: {r.samples} samples, {r.cut} ({r.cut_share:.0%}) cut at max_tokens = {_cap(r.max_tokens)}, "
            f"{r.no_answer} ({r.no_answer_share:.0%}) finished without an answer, {r.grade_errors} "
            f"({r.grade_error_share:.0%}) not graded"
            for r in self.table.itertuples(index=False)
        ]


def data_quality(
    con: duckdb.DuckDBPyConnection,
    run_ids: Sequence[str],
    *,
    models: Sequence[str] | None = None,
    dataset: str | None = None,
    bins: Mapping[str, int] | None = None,
    threshold: float = THRESHOLD,
) -> DataQuality:
    """The figures per model × dataset (× bin: `bins` maps a question's identity, pools.KEY_OR_LABEL_SQL, to its
    difficulty bin; questions it leaves out are not counted) over the samples of `run_ids`, and the warnings."""
    from backend.metrics.pools import KEY_OR_LABEL_SQL

    threshold = check_threshold(threshold)
    where = ["list_contains($runs, run_id)"]
    params: dict = {"runs": list(run_ids)}
    if models is not None:
        where.append("list_contains($models, model)")
        params["models"] = list(models)
    if dataset is not None:
        where.append("dataset = $dataset")
        params["dataset"] = dataset
    keys = ["model", "dataset"]
    source = f"(SELECT *, {KEY_OR_LABEL_SQL} AS _key FROM samples WHERE {' AND '.join(where)})"
    if bins is not None:
        params["bin_keys"], params["bin_levels"] = list(bins), [int(v) for v in bins.values()]
        source = (
            f"(SELECT q.*, b.bin FROM {source} q JOIN (SELECT unnest($bin_keys) AS _key, "
            "unnest($bin_levels) AS bin) b USING (_key))"
        )
        keys.append("bin")
    has_runs = not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'runs'").df().empty
    caps = RUN_MAX_TOKENS_SQL if has_runs else "SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS max_tokens"
    table = con.execute(quality_sql(keys, f"{source} AS _selected", caps), params).df()
    return DataQuality(table, threshold, tuple(quality_warnings(table, threshold)))


def bins_by_key(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], model: str, labels, levels, dataset=None):
    """{question key: bin} from a study's bins, which name questions by their pool labels (pools.question_labels
    over the model's sampled questions in these runs, as load_pool labels them)."""
    from backend.metrics.pools import KEY_OR_LABEL_SQL, question_labels

    df = con.execute(
        f"""SELECT DISTINCT question_id, {KEY_OR_LABEL_SQL} AS key FROM samples
            WHERE list_contains($runs, run_id) AND model = $model AND strategy = 'sample'
              AND ($dataset::VARCHAR IS NULL OR dataset = $dataset) ORDER BY ALL""",
        {"runs": list(run_ids), "model": model, "dataset": dataset},
    ).df()
    key_of = dict(zip(question_labels(df["question_id"], df["key"]), df["key"]))
    return {key_of[label]: int(lv) for label, lv in zip(labels, levels) if label in key_of}


def _group(row) -> str:
    name = f"{row.model} · {row.dataset}"
    return name + (f" · bin {int(row.bin)}" if "bin" in row._fields else "")


PROBLEMS = (
    (
        "cut_share",
        "Samples cut at max_tokens",
        "A cut sample has no answer and counts as wrong, so accuracy here measures where the model is cut off, not "
        "what the strategies do. Every finished completion is shorter than the cap, so their 95th percentile "
        "understates the need: the suggestion allows for the share cut.",
    ),
    (
        "no_answer_share",
        "Finished samples with no extracted answer",
        "They count as wrong and never join a vote: the prompt's answer format or the task's extraction is failing.",
    ),
    (
        "grade_error_share",
        "Samples whose grading failed",
        "The task's checker raised on them, so they are ungraded and count as wrong (see the samples' grade_error).",
    ),
)
"""(share column, what it counts, what it does to the reading) per kind of problem."""

COUNT_OF = {"cut_share": "cut", "no_answer_share": "no_answer", "grade_error_share": "grade_errors"}


def quality_warnings(table: pd.DataFrame, threshold: float = THRESHOLD, limit: int = 6) -> list[str]:
    """One warning per kind of problem whose share passes `threshold`, beyond chance (`EVIDENCE`), in some group
    (Markdown: a sentence saying what it does to the reading, then one bullet per group, worst first, with what to
    change)."""
    out = []
    for share, what, reading in PROBLEMS:
        count = table[COUNT_OF[share]].to_numpy(float)
        beyond_chance = binom.sf(count - 1, table["samples"].to_numpy(float), threshold) < EVIDENCE
        bad = table[(table[share] > threshold) & beyond_chance].sort_values(share, ascending=False, kind="stable")
        if bad.empty:
            continue
        lines = []
        for r in bad.head(limit).itertuples(index=False):
            line = f"- {_group(r)}: {getattr(r, COUNT_OF[share])} of {r.samples} ({getattr(r, share):.0%})"
            if share == "cut_share":
                line += f" at max_tokens = {_cap(r.max_tokens)}{_advice(r)}"
            lines.append(line)
        if len(bad) > limit:
            lines.append(f"- and {len(bad) - limit} more group(s)")
        out.append(
            f"**{what}: more than {threshold:.0%}** in {len(bad)} group(s) (beyond chance at {threshold:.0%}: "
            f"binomial p < {EVIDENCE:g}). {reading}\n" + "\n".join(lines)
        )
    return out


def _cap(v) -> str:
    return "unknown" if pd.isna(v) else str(int(v))


def _advice(r) -> str:
    """What to change for a group whose samples are cut: the suggested max_tokens and the percentile it reads."""
    if pd.isna(r.suggested_max_tokens):
        return ""
    if pd.isna(r.finished_p95):
        m = "no completion finished"
    else:
        m = f"the 95th percentile of finished completions is {r.finished_p95:.0f}"
    if pd.isna(r.max_tokens) or r.suggested_max_tokens > r.max_tokens:
        return f" — raise max_tokens to ≈ {int(r.suggested_max_tokens)}: {m}"
    return f" — max_tokens already covers 95 % of completions ({m})"
