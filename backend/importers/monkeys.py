"""Large Language Monkeys (Brown et al. 2024, "Large Language Monkeys: Scaling Inference Compute with Repeated
Sampling"; reference code ScalingIntelligence/large_language_monkeys): one YAML file per problem, as
`llmonk/generate/*.py` writes it (`prompt`, `question`, `samples`, `gt_answer`) and `llmonk/evaluate/*.py` grades
it (adds `is_corrects`, aligned with `samples`); the problem's id is the file's name. The released pools (the
monkey_business dataset) hold the same columns in Parquet or JSON records, one record per problem.

The format holds no token counts, extracted answers or verifier scores: tokens and FLOPs import as NULL (cost of
pass and FLOP axes need them) unless a tokenizer recounts them (`ttc import --tokenizer`). Answers are extracted by the rule llmonk graded the pool with (`answers`,
backend/importers/answers.py), so majority and weighted votes have answers to count; a pool of another dataset
imports without answers unless a rule is named."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import pyarrow as pa
import yaml
from pydantic import Field

from backend.errors import ImportFileError
from backend.importers.answers import Rule, extract
from backend.importers.base import Block, ImporterEntry, as_correct
from backend.importers.records import records
from backend.importers.yaml_docs import documents
from backend.options import Options

YAML_SUFFIXES = (".yaml", ".yml")
ID_COLUMNS = ("question_id", "id", "orig_dset_idx")
"""A records file's problem id: the first of these a record has, else its record number."""


class MonkeysOptions(Options):
    dataset: str | None = Field(None, description="the dataset the problems come from (gsm8k, math, ...)")
    answers: Literal["auto", "gsm8k", "math", "none"] = Field(
        "auto",
        description="how final answers are extracted for votes: llmonk's GSM8K rule, the Minerva MATH rule, none; "
        "auto picks by dataset (gsm8k; math*)",
    )

    def rule(self) -> Rule | None:
        if self.answers != "auto":
            return None if self.answers == "none" else self.answers
        name = (self.dataset or "").lower()
        return "gsm8k" if name == "gsm8k" else "math" if name.startswith("math") else None


def reader(options: MonkeysOptions):
    def read(paths: Sequence[Path]) -> Iterator[Block]:
        for path in paths:
            if path.suffix.lower() in YAML_SUFFIXES:
                yield from _yaml(path, options)
            else:
                for n, rec in records(path):
                    qid = next((rec[c] for c in ID_COLUMNS if rec.get(c) is not None), n)
                    yield _problem(path, n, str(qid), rec, options)

    return read


def _yaml(path: Path, options: MonkeysOptions) -> Iterator[Block]:
    """Each YAML document of the file is one problem (llmonk writes one per file: its id is the file's stem)."""
    docs = documents(path)
    n = 0
    while True:
        try:
            doc = next(docs)
        except StopIteration:
            return
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ImportFileError(path, n + 1, "-", f"not valid YAML{where}: the file is truncated?") from None
        n += 1
        if not isinstance(doc, dict):
            raise ImportFileError(path, n, "-", f"a {type(doc).__name__}, not a problem mapping")
        yield _problem(path, n, path.stem if n == 1 else f"{path.stem}/{n}", doc, options)


def _problem(path: Path, n: int, qid: str, doc: dict, options: MonkeysOptions) -> Block:
    for key in ("samples", "is_corrects"):
        if key not in doc:
            hint = " (grade it with llmonk/evaluate first)" if key == "is_corrects" else ""
            raise ImportFileError(path, n, key, f"missing{hint}")
        if not isinstance(doc[key], list):
            raise ImportFileError(path, n, key, f"a {type(doc[key]).__name__}, not a list")
    samples, verdicts = doc["samples"], doc["is_corrects"]
    if len(samples) != len(verdicts):
        raise ImportFileError(
            path, n, "is_corrects", f"{len(verdicts)} verdicts for {len(samples)} samples: the lists must align"
        )
    prompt = doc.get("prompt")
    completions = [None if s is None else str(s) for s in samples]
    rule = options.rule()
    answers = {} if rule is None else {"answer": extract(rule, pa.array(completions, pa.string()))}
    return Block(
        path,
        n,
        qid,
        {
            "task": "monkeys",
            "dataset": options.dataset,
            "question": doc.get("question"),
            "reference": _text(doc.get("gt_answer")),
        },
        {
            "completion": completions,
            **answers,
            "correct": verdicts
            if all(type(v) is bool for v in verdicts)
            else [as_correct(v, path, n, "is_corrects") for v in verdicts],
            "prompt": [prompt] * len(samples),
        },
    )


def _text(value) -> str | None:
    return None if value is None else str(value)


ENTRY = ImporterEntry(
    "monkeys",
    "Large Language Monkeys: a YAML file per problem (samples, is_corrects, gt_answer), or those columns in "
    "Parquet/JSON records",
    MonkeysOptions,
    reader,
    version="1",
    suffixes=(*YAML_SUFFIXES, ".parquet", ".json", ".jsonl"),
)
