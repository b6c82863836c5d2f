"""OpenAI Batch API output (platform.openai.com/docs/guides/batch): a JSONL file with one line per request,
`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`, the body a chat.completion
object (`choices[0].message.content`, `choices[0].finish_reason`, `usage.prompt_tokens`,
`usage.completion_tokens`, `usage.prompt_tokens_details.cached_tokens`). The batch's errors file has the same
lines with `response` null and `error: {"code", "message"}`: give it as well, and each of its lines is kept as a
failed sample (no completion, wrong, its error in grade_error), so what the batch paid for is all there.

The user's `custom_id_pattern`, a regular expression with a `question` group (and optionally a `sample` group, the
sample's index), says which question and sample each request was. Correctness is either a key of each line
(`correct_key`, e.g. one a grading script added) or the reference answers of a records file (`references`:
question_id, reference), compared with the answer `answer_pattern` extracts from the completion."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from backend.errors import ImportFileError
from backend.importers.base import Block, ImporterEntry, as_correct
from backend.importers.records import jsonl_records, records
from backend.options import Options


class OpenAIBatchOptions(Options):
    custom_id_pattern: str = Field(
        r"(?P<question>.+)-s(?P<sample>\d+)",
        description="regex over custom_id with a `question` group and optionally a `sample` group (its index)",
    )
    correct_key: str | None = Field(None, description="a key of each output line holding the verdict")
    references: Path | None = Field(None, description="a records file of question_id, reference")
    answer_pattern: str = Field(
        r"####\s*(.+?)\s*$", description="with `references`: regex whose first group is the completion's answer"
    )
    dataset: str | None = None

    @field_validator("custom_id_pattern", "answer_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a regular expression ({e})") from None
        return value

    @model_validator(mode="after")
    def _one_verdict(self):
        if (self.correct_key is None) == (self.references is None):
            raise ValueError("give exactly one of correct_key and references (where correctness comes from)")
        if "question" not in re.compile(self.custom_id_pattern).groupindex:
            raise ValueError("custom_id_pattern needs a named group `question`")
        return self


def _references(path: Path) -> dict[str, str]:
    out = {}
    for n, rec in records(path):
        for key in ("question_id", "reference"):
            if rec.get(key) is None:
                raise ImportFileError(path, n, key, "missing")
        out[str(rec["question_id"])] = str(rec["reference"])
    return out


def _get(rec: dict, path: Path, n: int, *keys: str) -> Any:
    """rec[k1][k2]...; a missing or mistyped level is an error naming the dotted field."""
    value: Any = rec
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise ImportFileError(path, n, ".".join(keys[: i + 1]), "missing")
        value = value[key]
    return value


def reader(options: OpenAIBatchOptions):
    pattern = re.compile(options.custom_id_pattern)
    answer_re = re.compile(options.answer_pattern, re.MULTILINE)

    def read(paths: Sequence[Path]) -> Iterator[Block]:
        refs = _references(options.references) if options.references is not None else None
        for path in paths:
            for n, rec in jsonl_records(path):
                yield _line(path, n, rec, pattern, answer_re, refs, options)

    return read


def _line(path, n, rec, pattern, answer_re, refs, options: OpenAIBatchOptions) -> Block:
    cid = _get(rec, path, n, "custom_id")
    m = pattern.fullmatch(str(cid))
    if m is None:
        raise ImportFileError(path, n, "custom_id", f"{cid!r} does not match custom_id_pattern {pattern.pattern!r}")
    qid = m["question"]
    sample: dict[str, list] = {}
    if "sample" in pattern.groupindex:
        sample["sample_idx"] = [int(m["sample"])]
    response, error = rec.get("response"), rec.get("error")
    ok = error is None and isinstance(response, dict) and response.get("status_code") == 200
    if not ok:  # a failed request: a failed sample, so the batch's cost and its failures both show
        what = error if error is not None else (response or {}).get("body", {}).get("error", response)
        sample |= {"correct": [False], "grade_error": [f"request failed: {what}"], "finish_reason": ["error"]}
    else:
        choices = _get(rec, path, n, "response", "body", "choices")
        if not isinstance(choices, list) or len(choices) != 1:
            raise ImportFileError(path, n, "response.body.choices", "one choice per request is imported (n = 1)")
        text = _get(choices[0], path, n, "message", "content")
        usage = _get(rec, path, n, "response", "body", "usage")
        answer = None
        if refs is not None:
            if qid not in refs:
                raise ImportFileError(
                    path, n, "custom_id", f"question {qid!r} has no reference in {options.references}"
                )
            found = answer_re.search(text or "")
            answer = found.group(1).strip() if found else None
            correct = answer is not None and answer == refs[qid].strip()
        else:
            correct = as_correct(rec.get(options.correct_key), path, n, str(options.correct_key))
        sample |= {
            "completion": [text],
            "answer": [answer],
            "correct": [correct],
            "finish_reason": [choices[0].get("finish_reason")],
            "prompt_tokens": [usage.get("prompt_tokens")],
            "completion_tokens": [usage.get("completion_tokens")],
            "cached_prompt_tokens": [(usage.get("prompt_tokens_details") or {}).get("cached_tokens")],
        }
    reference = refs.get(qid) if refs is not None else None
    question = {"task": "openai_batch", "dataset": options.dataset, "question": None, "reference": reference}
    return Block(path, n, qid, question, sample)


ENTRY = ImporterEntry(
    "openai_batch",
    "OpenAI Batch output (and errors) JSONL: custom_id parsed into question and sample by a pattern; correctness "
    "from a key of each line or a references file",
    OpenAIBatchOptions,
    reader,
    version="1",
    suffixes=(".jsonl",),
    has_tokens=True,
)
