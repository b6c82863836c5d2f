"""Importers of other tools' sample logs, one file each, in one registry (backend/registry.py): `ttc import FORMAT`
looks the format up here, and README's Import section names each.

An importer turns its files into `Block`s, each the samples of one question as columns of the store's samples
table (store/schema.SAMPLES names), and never reads a whole large file at once (JSONL lines, Parquet batches, a
YAML document per problem). backend/importers/ingest.py does the rest, the same for every format: question keys,
sample indices, FLOPs, staging and the commit. An entry declares what its format can hold, so the import can say
what it could not know (tokens, verifier scores)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import ImportFileError
from backend.options import Options
from backend.registry import Entry, Registry


@dataclass
class Block:
    """The samples of one question read from one place of a file (`record`: what an error names).

    `question`: task, dataset, question (its text) and reference, any of them None; `samples`: aligned columns
    named as in store/schema.SAMPLES (`sample_idx` optional: the order read is the index); `verifier_scores`:
    per verifier, one score per sample (None: not scored)."""

    path: Path
    record: int | str
    question_id: str
    question: dict[str, Any]
    samples: dict[str, list]
    verifier_scores: dict[str, list] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.samples.values()))) if self.samples else 0


Reader = Callable[[Sequence[Path]], Iterator[Block]]


@dataclass(frozen=True)
class ImporterEntry(Entry):
    """factory(options) -> Reader. `version` enters the provenance and the content hash: a fixed reader re-imports.
    The capability flags say what the format can hold."""

    version: str = "1"
    suffixes: tuple[str, ...] = ()
    needs_mapping: bool = False  # the user says which column is what (`--mapping FILE`)
    has_tokens: bool = False  # the format may carry token counts (else they are NULL, and FLOPs with them)
    has_verifier_scores: bool = False


IMPORTERS: Registry[ImporterEntry] = Registry("import format", unknown="not an option of {name}")


def register_importer(entry: ImporterEntry) -> ImporterEntry:
    """Add a format; `ttc import` and README's Import section read it from here."""
    return IMPORTERS.register(entry)


TRUE_VALUES: tuple[Any, ...] = (True, 1, "true", "True", "TRUE", "1", "yes", "correct")
FALSE_VALUES: tuple[Any, ...] = (False, 0, "false", "False", "FALSE", "0", "no", "incorrect")


def as_correct(
    value: Any, path: Path, record: int | str, fld: str, true_values=TRUE_VALUES, false_values=FALSE_VALUES
) -> bool:
    """A correctness value as a boolean: one of `true_values` or `false_values` (compared with ==, so 1.0 is 1 and
    True), anything else an ImportFileError: a score of 0.5 or a missing value is not a verdict."""
    if value in true_values:
        return True
    if value in false_values:
        return False
    allowed = ", ".join(repr(v) for v in (*true_values, *false_values))
    raise ImportFileError(path, record, fld, f"{value!r} is not a correctness value", allowed)


def _register_builtins() -> None:
    from backend.importers import generic, monkeys, openai_batch

    for entry in (generic.ENTRY, monkeys.ENTRY, openai_batch.ENTRY):
        register_importer(entry)


def importer_options(name: str, data: dict | None, fld: str) -> Options:
    return IMPORTERS.options(name, data or {}, fld, "FORMAT")


_register_builtins()
