"""The generic format: JSONL, JSON, CSV or Parquet records with a column mapping (`--mapping FILE`, YAML or JSON).

Two layouts:
- long: one record per sample; the question's fields repeat on each of its samples;
- wide: one record per question; its per-sample fields are aligned lists (all of one length, checked).

The mapping names, for each field of the store, the column holding it (`columns:`; a field not named reads the
column of its own name when there is one), which values count as correct (`correct_values`, `incorrect_values`;
anything else is an error, never a silent False), and which columns are verifiers' scores (`scores:`, or every
column named `score.<verifier>`). With no mapping the columns are the store's own names, long layout: what
`ttc export --format generic` writes (`export_generic`), so a run exported and imported again is the same run."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from backend.errors import ImportFileError
from backend.importers.base import FALSE_VALUES, TRUE_VALUES, Block, ImporterEntry, as_correct
from backend.importers.records import SUFFIXES, columns, records
from backend.options import Options

QUESTION_FIELDS = ("task", "dataset", "question", "reference")
SAMPLE_FIELDS: dict[str, type] = {
    "sample_idx": int,
    "prompt": str,
    "completion": str,
    "answer": str,
    "correct": bool,
    "score": float,
    "prompt_tokens": int,
    "cached_prompt_tokens": int,
    "completion_tokens": int,
    "logprob_sum": float,
    "logprob_mean": float,
    "finish_reason": str,
    "latency_s": float,
    "seed": int,
    "grade_error": str,
}
"""The samples-table fields a record may carry, and their types (store/schema.SAMPLES)."""
SCORE_PREFIX = "score."


class Columns(Options):
    """Which column holds each field (default: the column of the field's own name, when the file has one)."""

    question_id: str = Field("question_id", description="the question's id (required)")
    task: str = "task"
    dataset: str = "dataset"
    question: str = Field("question", description="the question's text")
    reference: str = Field("reference", description="the reference answer")
    sample_idx: str = Field("sample_idx", description="long layout: the sample's index (default: the order read)")
    prompt: str = "prompt"
    completion: str = "completion"
    answer: str = Field("answer", description="the extracted answer (what majority votes count)")
    correct: str = Field("correct", description="the verdict (required)")
    score: str = "score"
    prompt_tokens: str = "prompt_tokens"
    cached_prompt_tokens: str = "cached_prompt_tokens"
    completion_tokens: str = "completion_tokens"
    logprob_sum: str = "logprob_sum"
    logprob_mean: str = "logprob_mean"
    finish_reason: str = "finish_reason"
    latency_s: str = "latency_s"
    seed: str = "seed"
    grade_error: str = "grade_error"


class GenericOptions(Options):
    layout: Literal["long", "wide"] = Field("long", description="long: a record per sample; wide: per question")
    columns: Columns = Field(default_factory=Columns)
    correct_values: list[bool | int | float | str] = Field(list(TRUE_VALUES), description="values that are correct")
    incorrect_values: list[bool | int | float | str] = Field(list(FALSE_VALUES), description="values that are not")
    scores: dict[str, str] = Field(
        default_factory=dict, description=f"verifier -> column of its scores (also: every column {SCORE_PREFIX}NAME)"
    )


REQUIRED = ("question_id", "correct")


def _named(options: GenericOptions) -> dict[str, str]:
    """field -> column, for every field; the explicitly named ones must exist."""
    return options.columns.model_dump()


def _explicit(options: GenericOptions) -> set[str]:
    return set(options.columns.model_fields_set) | set(REQUIRED)


def _convert(value: Any, kind: type, path: Path, record: int | str, column: str) -> Any:
    if value is None:
        return None
    try:
        if kind is str:
            return (
                value
                if isinstance(value, str)
                else json.dumps(value)
                if isinstance(value, (list, dict))
                else str(value)
            )
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        raise ImportFileError(
            path, record, column, f"{value!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    return value


def reader(options: GenericOptions):
    named = _named(options)
    explicit = _explicit(options)
    true_values, false_values = tuple(options.correct_values), tuple(options.incorrect_values)

    def read(paths: Sequence[Path]) -> Iterator[Block]:
        for path in paths:
            declared = columns(path)
            if declared is not None:  # a CSV or Parquet file says its columns once: check the mapping against it
                for fld in sorted(explicit):
                    if named[fld] not in declared:
                        raise ImportFileError(
                            path,
                            "-",
                            named[fld],
                            f"the mapping's column for {fld} is not in the file",
                            ", ".join(declared),
                        )
                for verifier, col in options.scores.items():
                    if col not in declared:
                        raise ImportFileError(path, "-", col, f"the mapping's scores of {verifier} are not in the file")
            for n, rec in records(path):
                yield _block(path, n, rec, options, named, explicit, true_values, false_values)

    return read


def _block(path, n, rec, options, named, explicit, true_values, false_values) -> Block:
    for fld in explicit:
        if named[fld] not in rec:
            raise ImportFileError(path, n, named[fld], f"missing (the mapping's column for {fld})")
    qid = rec[named["question_id"]]
    if qid is None or isinstance(qid, (list, dict)):
        raise ImportFileError(path, n, named["question_id"], f"{qid!r} is not a question id")
    question = {f: _convert(rec.get(named[f]), str, path, n, named[f]) for f in QUESTION_FIELDS}
    scores = dict(options.scores)
    scores.update({k[len(SCORE_PREFIX) :]: k for k in rec if k.startswith(SCORE_PREFIX) and k not in scores.values()})
    present = {f: named[f] for f in SAMPLE_FIELDS if named[f] in rec}
    if options.layout == "long":
        raw = {f: [rec[c]] for f, c in present.items()}
        raw_scores = {v: [rec.get(c)] for v, c in scores.items()}
    else:
        raw, raw_scores, length = {}, {}, None
        for f, c in [*present.items(), *(("score:" + v, c) for v, c in scores.items())]:
            value = rec[c] if c in rec else None
            if isinstance(value, str) and path.suffix.lower() == ".csv":
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass
            if value is None and f.startswith("score:"):
                continue
            if not isinstance(value, list):
                raise ImportFileError(
                    path, n, c, f"wide layout: a list per question expected, got {type(value).__name__}"
                )
            if length is None:
                length, first = len(value), c
            elif len(value) != length:
                raise ImportFileError(
                    path, n, c, f"{len(value)} values where {first} has {length}: lists of one question must align"
                )
            (raw_scores if f.startswith("score:") else raw)[f.removeprefix("score:")] = value
    samples: dict[str, list] = {}
    for f, values in raw.items():
        col = named[f]
        if f == "correct":
            errors = raw.get("grade_error") or [None] * len(values)
            samples[f] = [
                None if v is None and e is not None else as_correct(v, path, n, col, true_values, false_values)
                for v, e in zip(values, errors)
            ]
        else:
            samples[f] = [_convert(v, SAMPLE_FIELDS[f], path, n, col) for v in values]
    verifier_scores = {v: [_convert(s, float, path, n, scores[v]) for s in values] for v, values in raw_scores.items()}
    return Block(path, n, str(qid), question, samples, verifier_scores)


ENTRY = ImporterEntry(
    "generic",
    "JSONL, JSON, CSV or Parquet records with a column mapping (long: a record per sample; wide: per question)",
    GenericOptions,
    reader,
    version="1",
    suffixes=SUFFIXES,
    needs_mapping=True,
    has_tokens=True,
    has_verifier_scores=True,
)


EXPORT_COLUMNS = ("question_id", *QUESTION_FIELDS, *SAMPLE_FIELDS)


def export_generic(con, run_id: str, model: str, out: Path) -> int:
    """Write a run's pool (strategy `sample`) of one model as the generic format's long layout with no mapping
    needed: JSONL, or Parquet by `out`'s suffix; verifier scores as `score.<verifier>` columns. Streams in row
    batches; returns the rows written."""
    verifiers = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT verifier FROM scores WHERE run_id = ? AND model = ? ORDER BY 1", [run_id, model]
        ).fetchall()
    ]
    pivot = "".join(
        f", (SELECT any_value(c.score) FROM scores c WHERE c.run_id = s.run_id AND c.model = s.model AND "
        f"c.question_id = s.question_id AND c.sample_idx = s.sample_idx AND c.verifier = ${i + 3}) AS score_{i}"
        for i in range(len(verifiers))
    )
    sample_cols = ", ".join(f"s.{c}" for c in SAMPLE_FIELDS)
    sql = f"""
    SELECT s.question_id, coalesce(q.task, s.task) AS task, coalesce(q.dataset, s.dataset) AS dataset,
           q.question, q.reference, {sample_cols}{pivot}
    FROM samples s LEFT JOIN (SELECT run_id, question_id, any_value(task) AS task, any_value(dataset) AS dataset,
                                     any_value(question) AS question, any_value(reference) AS reference
                              FROM questions GROUP BY run_id, question_id) q
      ON q.run_id = s.run_id AND q.question_id = s.question_id
    WHERE s.run_id = $1 AND s.model = $2 AND s.strategy = 'sample'
    ORDER BY s.question_id, s.sample_idx"""
    params = [run_id, model, *verifiers]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = 0
    reader_ = con.sql(sql, params=params).to_arrow_reader(8192)
    # a verifier's name is stored data (an import may bring any): it names the column here, never the SQL
    names = reader_.schema.names[: len(reader_.schema.names) - len(verifiers)] + [SCORE_PREFIX + v for v in verifiers]
    try:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            schema = pa.schema([f.with_name(n) for f, n in zip(reader_.schema, names)])
            with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
                for batch in reader_:
                    w.write_batch(batch.rename_columns(names))
                    rows += batch.num_rows
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for batch in reader_:
                    for rec in batch.rename_columns(names).to_pylist():
                        f.write(json.dumps({k: v for k, v in rec.items() if v is not None}) + "\n")
                    rows += batch.num_rows
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows
