"""A question's identity in the store: its content, not its id (ids are positions within a run, so
`basic_arithmetic/0/0` is a different sum under other knobs). Samples, questions and nodes carry the key (shard
layout 7); shards written before read it from their run's questions row (store/schema.py)."""

from __future__ import annotations

import hashlib

KEY_CHARS = 16
"""Hex digits of a question key (64 bits: distinct questions of one store never share one in practice)."""


def question_key(task: str | None, dataset: str | None, text: str | None, reference: str | None) -> str:
    """A question is its content: the suite's kind, the dataset, the question's text and its reference answer.
    Ids are positions within a run (`basic_arithmetic/0/0` is a different sum under other knobs), so two runs pool
    samples of one question exactly when their keys are equal, whatever their ids. `QUESTION_KEY_SQL` computes the
    same key in DuckDB (a test holds the two equal), so stores written before keys existed are keyed on read."""
    parts = "\x1f".join(p or "" for p in (task, dataset, text, reference))
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()[:KEY_CHARS]


QUESTION_KEY_SQL = (
    "left(sha256(concat_ws(chr(31), coalesce(task, ''), coalesce(dataset, ''), coalesce(question, ''), "
    f"coalesce(reference, ''))), {KEY_CHARS})"
)
"""`question_key` over a row of the questions table."""
