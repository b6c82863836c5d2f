"""Importers of other tools' sample logs, one file each, in one registry (backend/registry.py): `ttc import FORMAT`
looks the format up here, and README's Import section names each.

An importer turns its files into `Block`s, each the samples of one question as columns of the store's samples
table (store/schema.SAMPLES names), and never reads a whole large file at once (JSONL lines, Parquet batches, a
YAML document per problem). backend/importers/ingest.py does the rest, the same for every format: question keys,
sample indices, FLOPs, staging and the commit. An entry declares what its format can hold, so the import can say
what it could not know (tokens, verifier scores)."""

from __future__ import annotations

from backend.importers import generic, inspect_log, lm_eval, monkeys, openai_batch, search_and_learn
from backend.importers.base import (
    FALSE_VALUES,
    IMPORTERS,
    TRUE_VALUES,
    Block,
    ImporterEntry,
    Reader,
    as_correct,
    register_importer,
)

__all__ = [
    "FALSE_VALUES",
    "IMPORTERS",
    "TRUE_VALUES",
    "Block",
    "ImporterEntry",
    "Reader",
    "as_correct",
    "register_importer",
]

for _entry in (
    generic.ENTRY,
    monkeys.ENTRY,
    openai_batch.ENTRY,
    inspect_log.ENTRY,
    search_and_learn.ENTRY,
    lm_eval.ENTRY,
):
    register_importer(_entry)
