"""`ttc import`: an importer's blocks (backend/importers) become an ordinary run of the store, read-only.

- Idempotent: the run's id is the hash of what was imported (the format, the importer's version, every file's
  SHA-256, the options, the model and its architecture); importing the same files again finds it and writes
  nothing.
- Nothing half written: rows are streamed into Parquet files in a hidden staging folder of the store; only when
  every record has been read and checked are the folders moved into place and the run committed
  (store/imports.py). Any error removes the staging folder.
- Streaming: rows go to the staging files in batches; what is kept whole is one entry per question.
- Question identity is the store's rule (store/keys.question_key); a question with no text is keyed by its id
  as well, so questions known only by id stay apart.
- FLOPs are priced by the ledger's rule (backend/ledger.py, as the worker prices a pool: one prefill per question
  shared by its samples) when the model's architecture (`--arch`) or parameter count (`--params`, 2·N FLOPs per
  token, the attention term left out) is given and the format has token counts; else NULL.
- Token counts the files lack are recounted from the text with the tokenizer the user names (`--tokenizer`,
  backend/importers/tokens.py), per staging batch, before FLOPs are priced; without one they stay NULL. The
  tokenizer enters the content hash: a recount is another import of the same files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from backend.errors import ImportFileError, SpecError
from backend.importers.base import IMPORTERS, Block, file_sha256
from backend.importers.tokens import Tokenizer
from backend.ledger import ModelArch, decode_flops, prefill_flops
from store import Store
from store.imports import begin_import, drop_unfinished, find_import, finish_import
from store.keys import question_key
from store.schema import QUESTIONS, SAMPLES, SCORES

FLUSH_ROWS = 65536


@dataclass(frozen=True)
class ImportResult:
    run_id: str
    name: str
    samples: int
    questions: int
    already: bool  # these files were imported before: nothing was written
    missing: tuple[str, ...] = ()  # what the format could not give (tokens, FLOPs, answers)
    recounted: str = ""  # which token counts the tokenizer made, and with what ("" when none)

    def __str__(self) -> str:
        if self.already:
            return f"run {self.run_id} ({self.name}): these files were imported already; nothing written"
        note = f"; {self.recounted}" if self.recounted else ""
        note += f"; not in the files: {', '.join(self.missing)}" if self.missing else ""
        return f"run {self.run_id} ({self.name}): {self.samples} samples of {self.questions} questions imported{note}"


def load_options_file(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise SpecError("--mapping", f"{path} cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise SpecError("--mapping", f"{path} is not valid YAML or JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SpecError("--mapping", f"{path} must hold a mapping of options, got {type(data).__name__}")
    return data


def load_arch(params: int | None, arch_file: Path | None) -> ModelArch | None:
    """The architecture FLOPs are priced with: a GGUF file's header, a YAML/JSON of backend.ledger.ModelArch's fields,
    or only a parameter count (then 2·N per token, no attention term)."""
    if params is not None and arch_file is not None:
        raise SpecError("--params", "give --params or --arch, not both")
    if params is not None:
        if params <= 0:
            raise SpecError("--params", f"{params} is not a parameter count", "a positive integer")
        return ModelArch(n_params=int(params), n_layers=0, d_model=0)
    if arch_file is None:
        return None
    if Path(arch_file).suffix.lower() == ".gguf":
        from backend.models.gguf_meta import read_header

        return read_header(arch_file).arch()
    data = load_options_file(arch_file)
    known = set(ModelArch.__dataclass_fields__)
    if set(data) - known or "n_params" not in data:
        raise SpecError(
            "--arch",
            f"{arch_file}: fields {sorted(data)}",
            f"n_params (required), {', '.join(sorted(known - {'n_params'}))}",
        )
    try:
        return ModelArch(**data)
    except TypeError as e:
        raise SpecError("--arch", f"{arch_file}: {e}") from None


def import_files(
    store: Store,
    fmt: str,
    paths: Sequence[Path],
    *,
    name: str | None = None,
    model: str = "imported",
    options: dict | None = None,
    arch: ModelArch | None = None,
    tokenizer: Tokenizer | None = None,
) -> ImportResult:
    """`tokenizer` (tokens.open_tokenizer): recounts the token counts the files lack."""
    entry = IMPORTERS.lookup(fmt, "FORMAT")
    opts = IMPORTERS.options(fmt, options or {}, "--mapping", "FORMAT")
    paths = [Path(p) for p in paths]
    if not paths:
        raise SpecError("PATH", "no file given", "one or more files of the format")
    for p in paths:
        if not p.is_file():
            raise ImportFileError(p, "-", "-", "no such file")
    files: list[dict[str, Any]] = [{"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in paths]
    identity: dict[str, Any] = {
        "format": fmt,
        "importer_version": entry.version,
        "files": sorted(f["sha256"] for f in files),
        "options": opts.model_dump(mode="json"),
        "model": model,
        "arch": asdict(arch) if arch else None,
    }
    if tokenizer is not None:  # only then: the imports made before the option keep their hashes
        identity["tokenizer"] = tokenizer.identity()
    content_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    run_id = f"import-{content_hash[:16]}"
    name = name or f"{fmt}: {paths[0].name}" + (f" +{len(paths) - 1}" if len(paths) > 1 else "")
    done = find_import(store, content_hash)
    if done is not None:
        row = store.get_run(done["run_id"]) or {}
        return ImportResult(done["run_id"], row.get("name", name), int(row.get("total_samples") or 0), 0, True)
    staging = store.root / f".import-{run_id}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        writer = _Staging(staging, run_id, model, arch, tokenizer)
        for block in entry.factory(opts)(paths):
            writer.add(block)
        writer.close()
        spec = {
            "name": name,
            "models": [model],
            "task": {"kind": writer.task_kind()},
            "samples_per_question": writer.max_samples(),
            "import": {"format": fmt, "files": [Path(f["path"]).name for f in files]},
        }
        if writer.rows == 0:
            raise ImportFileError(paths[0], "-", "-", "no samples in the files")
        begin_import(store, run_id, name, spec, writer.rows)
        try:
            for table in ("samples", "scores", "questions"):
                src, dst = staging / table, store.root / table / run_id
                if src.is_dir():
                    shutil.rmtree(dst, ignore_errors=True)  # a crashed import of the same files left it
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(src, dst)
        except BaseException:
            for table in ("samples", "scores", "questions"):
                shutil.rmtree(store.root / table / run_id, ignore_errors=True)
            drop_unfinished(store, run_id)
            raise
        provenance = {
            "content_hash": content_hash,
            "format": fmt,
            "importer_version": entry.version,
            "files": files,
            "options": identity["options"]
            | {"model": model, "arch": identity["arch"], "tokenizer": identity.get("tokenizer")},
        }
        finish_import(store, run_id, provenance)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportResult(
        run_id, name, writer.rows, len(writer.questions), False, tuple(writer.missing()), writer.recount_note()
    )


class _Question:
    __slots__ = ("task", "dataset", "text", "reference", "key", "count", "indices", "where")

    def __init__(self, block: Block):
        q = block.question
        self.task, self.dataset, self.text, self.reference = q["task"], q["dataset"], q["question"], q["reference"]
        # a question known only by its id (no text) is keyed by the id too, or all such questions would be one
        text = self.text if self.text is not None else f"id:{block.question_id}"
        self.key = question_key(self.task, self.dataset, text, self.reference)
        self.count = 0
        self.indices: set[int] | None = None  # given sample indices, checked for repeats
        self.where = (block.path, block.record)


class _Staging:
    """Appends the blocks' rows to one Parquet file per table in the staging folder, in batches."""

    def __init__(self, root: Path, run_id: str, model: str, arch: ModelArch | None, tokenizer: Tokenizer | None):
        self.root, self.run_id, self.model, self.arch, self.tokenizer = root, run_id, model, arch, tokenizer
        self.recounted = {"prompt_tokens": 0, "completion_tokens": 0}  # rows whose count the tokenizer made
        self.questions: dict[str, _Question] = {}
        self.rows = 0
        self.created = datetime.now(UTC)
        self._pending: list[pa.Table] = []  # blocks' rows not yet written
        self._pending_rows = 0
        self._scores: dict[str, list] = {"question_id": [], "sample_idx": [], "verifier": [], "score": []}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._files: dict[str, Path] = {}
        self._seen = {"tokens": False, "answers": False}

    def add(self, block: Block) -> None:
        n = len(block)
        if n == 0:
            return
        q = self.questions.get(block.question_id)
        if q is None:
            q = self.questions[block.question_id] = _Question(block)
        elif (q.task, q.dataset, q.text, q.reference) != tuple(
            block.question[f] for f in ("task", "dataset", "question", "reference")
        ):
            path, record = q.where
            raise ImportFileError(
                block.path,
                block.record,
                "question",
                f"question {block.question_id!r} differs from its earlier record ({path.name} record {record})",
            )
        given = block.samples.get("sample_idx")
        idx: range | list[int]
        if given is None:
            if q.indices is not None:
                raise ImportFileError(block.path, block.record, "sample_idx", "missing where earlier records give it")
            idx = range(q.count, q.count + n)
        else:
            if q.indices is None:
                if q.count:
                    raise ImportFileError(
                        block.path, block.record, "sample_idx", "given where earlier records had none"
                    )
                q.indices = set()
            idx = given
            for i in idx:
                if i is None or i < 0:
                    raise ImportFileError(block.path, block.record, "sample_idx", f"{i!r} is not a sample index")
                if i in q.indices:
                    raise ImportFileError(
                        block.path, block.record, "sample_idx", f"sample {i} of question {block.question_id!r} repeats"
                    )
                q.indices.add(i)
        q.count += n
        self._pending.append(self._columns(block, q, idx, n))
        self._pending_rows += n
        for verifier, values in block.verifier_scores.items():
            for i, s in zip(idx, values):
                if s is not None:
                    self._scores["question_id"].append(block.question_id)
                    self._scores["sample_idx"].append(i)
                    self._scores["verifier"].append(verifier)
                    self._scores["score"].append(s)
        self.rows += n
        if self._pending_rows >= FLUSH_ROWS:
            self._flush()

    def _columns(self, block: Block, q: _Question, idx, n: int) -> pa.Table:
        """The block's rows as an Arrow table: its own columns converted once (a value of the wrong type is an
        error naming its record and field), the question's and the run's as repeated scalars, the rest NULL."""
        constant = {
            "run_id": self.run_id,
            "model": self.model,
            "task": q.task,
            "dataset": q.dataset,
            "question_id": block.question_id,
            "strategy": "sample",
            "created_at": self.created,
            "question_key": q.key,
        }
        arrays = []
        for f in SAMPLES:
            if f.name == "sample_idx":
                values = np.arange(idx.start, idx.stop, dtype=np.int32) if isinstance(idx, range) else idx
            elif f.name in block.samples:
                values = block.samples[f.name]
            elif f.name in constant:
                arrays.append(pa.repeat(pa.scalar(constant[f.name], f.type), n))
                continue
            else:
                arrays.append(pa.nulls(n, f.type))
                continue
            try:
                arrays.append(pa.array(values, type=f.type))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
                raise ImportFileError(
                    block.path, block.record, f.name, f"not {f.type} values ({str(e).splitlines()[0]})"
                ) from None
        return pa.Table.from_arrays(arrays, schema=SAMPLES)

    def _flush(self) -> None:
        if self._pending:
            table = self._priced(self._recount(pa.concat_tables(self._pending)))
            self._seen["tokens"] |= table["completion_tokens"].null_count < table.num_rows
            self._seen["answers"] |= table["answer"].null_count < table.num_rows
            self._write("samples", table)
            self._pending, self._pending_rows = [], 0
        sc = self._scores
        if sc["question_id"]:
            n = len(sc["question_id"])
            data = {f.name: pa.nulls(n, f.type) for f in SCORES}
            data.update(
                run_id=pa.array([self.run_id] * n, pa.string()),
                model=pa.array([self.model] * n, pa.string()),
                question_id=pa.array(sc["question_id"], pa.string()),
                sample_idx=pa.array(sc["sample_idx"], pa.int32()),
                verifier=pa.array(sc["verifier"], pa.string()),
                score=pa.array(sc["score"], pa.float64()),
            )
            self._write("scores", pa.table(data, schema=SCORES))
            self._scores = {k: [] for k in sc}

    def _recount(self, table: pa.Table) -> pa.Table:
        """The token counts the rows lack, counted from their text by the tokenizer: each distinct text once (a
        question's prompt is shared by its samples), the batch's texts in one call. A row without its text keeps
        a NULL count."""
        if self.tokenizer is None:
            return table
        for column, text, add_special in (
            ("prompt_tokens", "prompt", True),
            ("completion_tokens", "completion", False),
        ):
            need = pc.and_(pc.is_null(table[column]), pc.is_valid(table[text]))
            n = pc.sum(need).as_py() or 0
            if not n:
                continue
            wanted = pc.filter(table[text], need).cast(pa.large_string()).combine_chunks().dictionary_encode()
            made = self.tokenizer.counts(wanted.dictionary.to_pylist(), add_special)
            counts = table[column].to_numpy(zero_copy_only=False)  # float, NaN where NULL
            filled = np.where(np.isnan(counts), -1, counts).astype(np.int64)
            filled[need.to_numpy(zero_copy_only=False)] = made[wanted.indices.to_numpy()]
            table = table.set_column(
                table.schema.get_field_index(column), column, pa.array(filled, pa.int32(), mask=filled < 0)
            )
            self.recounted[column] += n
        return table

    def recount_note(self) -> str:
        made = [c.removesuffix("_tokens") for c, n in self.recounted.items() if n]
        if not made or self.tokenizer is None:
            return ""
        return f"{' and '.join(made)} token counts recounted with {self.tokenizer.name} ({self.tokenizer.kind})"

    def _priced(self, table: pa.Table) -> pa.Table:
        """prefill and decode FLOPs of each sample (flops itself needs each question's sample count: `close`)."""
        if self.arch is None:
            return table
        p = table["prompt_tokens"].to_numpy(zero_copy_only=False).astype(np.float64)
        d = table["completion_tokens"].to_numpy(zero_copy_only=False).astype(np.float64)
        known = ~(np.isnan(p) | np.isnan(d))
        pre = np.where(known, prefill_flops(self.arch, np.nan_to_num(p)), np.nan)
        dec = np.where(known, decode_flops(self.arch, np.nan_to_num(p), np.nan_to_num(d)), np.nan)
        table = table.set_column(
            table.schema.get_field_index("prefill_flops"), "prefill_flops", pa.array(pre, mask=~known)
        )
        return table.set_column(
            table.schema.get_field_index("decode_flops"), "decode_flops", pa.array(dec, mask=~known)
        )

    def _write(self, table: str, rows: pa.Table) -> None:
        w = self._writers.get(table)
        if w is None:
            folder = self.root / table
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
            w = self._writers[table] = pq.ParquetWriter(path, rows.schema, compression="zstd")
            self._files[table] = path
        w.write_table(rows)

    def close(self) -> None:
        self._flush()
        for w in self._writers.values():
            w.close()
        if self.arch is not None and "samples" in self._files:
            self._price_flops()
        if self.questions:
            qs = list(self.questions.items())
            self._write(
                "questions",
                pa.table(
                    {
                        "run_id": [self.run_id] * len(qs),
                        "task": [q.task for _, q in qs],
                        "question_id": [i for i, _ in qs],
                        "dataset": [q.dataset for _, q in qs],
                        "question": [q.text for _, q in qs],
                        "reference": [q.reference for _, q in qs],
                        "difficulty": [None] * len(qs),
                        "level": [None] * len(qs),
                        "question_key": [q.key for _, q in qs],
                    },
                    schema=QUESTIONS,
                ),
            )
            self._writers["questions"].close()

    def _price_flops(self) -> None:
        """flops = decode + prefill / the question's sample count (one prefill shared by the pool, as the worker
        charges it: store/schema.SAMPLES), in a second streaming pass over the staged samples."""
        src = self._files["samples"]
        dst = src.with_name("." + src.name + ".priced")
        counts = {qid: q.count for qid, q in self.questions.items()}
        with pq.ParquetWriter(dst, SAMPLES, compression="zstd") as w:
            for batch in pq.ParquetFile(src).iter_batches(batch_size=FLUSH_ROWS):
                t = pa.Table.from_batches([batch], schema=SAMPLES)
                n = np.array([counts[q] for q in t["question_id"].to_pylist()], dtype=np.float64)
                pre = t["prefill_flops"].to_numpy(zero_copy_only=False).astype(np.float64)
                dec = t["decode_flops"].to_numpy(zero_copy_only=False).astype(np.float64)
                flops = dec + pre / n
                t = t.set_column(t.schema.get_field_index("flops"), "flops", pa.array(flops, mask=np.isnan(flops)))
                w.write_table(t)
        os.replace(dst, src)

    def task_kind(self) -> str:
        kinds = {q.task for q in self.questions.values()} - {None}
        return kinds.pop() if len(kinds) == 1 else "imported"

    def max_samples(self) -> int:
        return max((q.count for q in self.questions.values()), default=0)

    def missing(self) -> list[str]:
        out = []
        if not self._seen["tokens"]:
            out.append(
                "token counts (so FLOPs; a tokenizer named recounts them)" if self.tokenizer is None else "token counts"
            )
        elif self.arch is None:
            out.append("FLOPs (give --params or --arch)")
        if not self._seen["answers"]:
            out.append("extracted answers (so majority votes)")
        return out
