"""Appending rows to the store: the questions table of a run, and the writer that batches finished samples into
immutable shards off the engine's threads (a shard every `flush_s` seconds or `max_rows` rows, so a killed
worker loses at most its unflushed tail). Both the worker and a search write through these."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from store.schema import QUESTIONS, SAMPLES
from store.store import Store


def questions_table(run_id: str, questions: Sequence[Any]) -> pa.Table:
    """One row per question (backend.tasks.base.Question: id, text, reference, difficulty knobs, level)."""
    return pa.table(
        {
            "run_id": [run_id] * len(questions),
            "task": [q.task for q in questions],
            "question_id": [q.question_id for q in questions],
            "dataset": [q.dataset for q in questions],
            "question": [q.text for q in questions],
            "reference": [q.reference for q in questions],
            "difficulty": [json.dumps(q.difficulty, sort_keys=True, default=str) for q in questions],
            "level": [q.level for q in questions],
            "question_key": [q.key for q in questions],
        },
        schema=QUESTIONS,
    )


class ShardWriter:
    """Grades finished completions off the engine's threads and appends them to the store in shards."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        flush_s: float = 1.0,
        max_rows: int = 512,
        on_rows: Callable[[int], None] | None = None,
    ):
        self.store, self.run_id = store, run_id
        self.flush_s, self.max_rows = flush_s, max_rows
        self.on_rows = on_rows
        self.inbox: queue.Queue = queue.Queue()
        self.rows: list[dict] = []
        self.error: BaseException | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._loop, name="ttc-shard-writer", daemon=True)
        self._thread.start()

    def put(self, row_fn: Callable[[], dict]) -> None:
        self.inbox.put(row_fn)

    def _flush(self) -> None:
        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=SAMPLES)
            self.store.write_shard("samples", self.run_id, table)
            self.written += len(self.rows)
            if self.on_rows:
                self.on_rows(len(self.rows))
            self.rows = []

    def _loop(self) -> None:
        last = time.monotonic()
        while True:
            try:
                item = self.inbox.get(timeout=0.1)
            except queue.Empty:
                item = None
            try:
                if item is _STOP:
                    self._flush()
                    return
                if item is not None:
                    self.rows.append(item())
                if self.rows and (len(self.rows) >= self.max_rows or time.monotonic() - last >= self.flush_s):
                    self._flush()
                    last = time.monotonic()
            except BaseException as e:  # surfaced to the run by close()
                self.error = e
                return

    def close(self) -> None:
        self.inbox.put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise self.error


_STOP = object()
