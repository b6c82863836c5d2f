"""Records of a JSONL, JSON, CSV or Parquet file, one at a time (record numbers from 1: a JSONL line, a CSV row
after the header, a Parquet row, an element of a JSON array), without reading the whole file: JSONL and CSV line
by line, Parquet in row batches, a JSON array element by element. A file that ends mid-record is an
ImportFileError naming the record."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.errors import ImportFileError

SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
_CHUNK = 1 << 20
_BATCH = 8192


def records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(record number, record) for every record of `path`, by its suffix."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from jsonl_records(path)
    elif suffix == ".json":
        yield from _json_array(path)
    elif suffix == ".csv":
        yield from _csv(path)
    elif suffix == ".parquet":
        yield from _parquet(path)
    else:
        raise ImportFileError(path, "-", "suffix", f"{suffix or 'none'} is not a records file", ", ".join(SUFFIXES))


def jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                cut = "" if line.endswith("\n") else " (the file ends mid-record: truncated?)"
                raise ImportFileError(path, n, "-", f"not valid JSON ({e.msg}){cut}") from None
            if not isinstance(rec, dict):
                raise ImportFileError(path, n, "-", f"a {type(rec).__name__}, not an object")
            yield n, rec


def _json_array(path: Path) -> Iterator[tuple[int, dict]]:
    """The elements of a top-level JSON array, decoded one by one from a sliding buffer."""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        buf, pos, eof = "", 0, False

        def fill() -> None:
            nonlocal buf, pos, eof
            more = f.read(_CHUNK)
            eof = not more
            buf, pos = buf[pos:] + more, 0

        def skip_ws() -> None:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos].isspace():
                    pos += 1
                if pos < len(buf) or eof:
                    return
                fill()

        fill()
        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise ImportFileError(path, 1, "-", "not a JSON array of records (use .jsonl for one record a line)")
        pos += 1
        n = 0
        while True:
            skip_ws()
            if pos < len(buf) and buf[pos] == "]":
                return
            n += 1
            while True:
                try:
                    rec, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as e:
                    if eof:
                        raise ImportFileError(
                            path, n, "-", f"not valid JSON ({e.msg}); the file is truncated?"
                        ) from None
                    fill()
                    continue
                if end == len(buf) and not eof:  # a number may continue in the next chunk
                    fill()
                    continue
                break
            pos = end
            if not isinstance(rec, dict):
                raise ImportFileError(path, n, "-", f"a {type(rec).__name__}, not an object")
            yield n, rec
            skip_ws()
            if pos < len(buf) and buf[pos] == ",":
                pos += 1
            elif pos < len(buf) and buf[pos] == "]":
                return
            else:
                raise ImportFileError(
                    path, n, "-", "the array does not go on after this record: the file is truncated?"
                )


def _csv(path: Path) -> Iterator[tuple[int, dict]]:
    """CSV cells are text: a list cell (the wide layout) is JSON text; the mapping's values say what is correct."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for n, row in enumerate(reader, 1):
            if None in row or any(v is None for v in row.values()):
                raise ImportFileError(path, n, "-", f"{len(reader.fieldnames or [])} columns expected: truncated row?")
            yield n, {k: (None if v == "" else v) for k, v in row.items()}


def _parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ImportFileError(path, "-", "-", f"not a readable Parquet file ({str(e).splitlines()[0]})") from None
    n = 0
    try:
        for batch in pf.iter_batches(batch_size=_BATCH):
            for rec in batch.to_pylist():
                n += 1
                yield n, rec
    except (pa.ArrowException, OSError) as e:
        raise ImportFileError(path, n + 1, "-", f"unreadable ({str(e).splitlines()[0]}): truncated?") from None


def columns(path: Path) -> list[str] | None:
    """The columns a CSV or Parquet file declares (None for JSON: each record has its own keys)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return next(csv.reader(f), [])
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as e:
            raise ImportFileError(path, "-", "-", f"not a readable Parquet file ({str(e).splitlines()[0]})") from None
    return None
