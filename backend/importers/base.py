"""What every importer shares: the `Block` of one question's samples, the registry entry and its registry, and the
reading of a correctness value. The package's __init__ registers the built-in formats."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import ImportFileError
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


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in chunks: what an import's identity and provenance name a file by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
