"""inspect_ai evaluation logs (UKGovernmentBEIS/inspect_ai; the schema is `inspect_ai/log/_log.py`, EvalLog and
EvalSample): a `.json` log is one EvalLog object; an `.eval` log is a zip archive (`log/_recorders/eval.py`) of
`header.json` (the EvalLog without samples, written when the evaluation ends), one `samples/{id}_epoch_{n}.json`
member per sample (a sample logged again appends a member of the same name: the last one counts, as inspect reads
it), and `_journal/` (what an unfinished evaluation has so far).

- Epochs are repeated samples of one question: epoch n is sample index n - 1 of the question with the sample's id.
- Correctness is one scorer's value (`scorer`, required when the log has several), mapped by `correct_values` and
  `incorrect_values` (defaults: inspect's CORRECT "C" or 1 / True is correct; INCORRECT "I", NOANSWER "N", 0 /
  False is not; PARTIAL "P" or 0.5 is neither, so it is an error unless the user puts it in one list). The score's
  `answer` is the sample's extracted answer (what votes count), its value as a number the sample's `score` (inspect's
  `value_to_float`: C 1, P 0.5, I and N 0).
- A sample that errored or hit a limit (`error`, `limit`) is kept as a failed sample (not correct, no answer or
  score; finish reason `error` or `<type>_limit`) whatever its scorer said, so the compute it used is still counted;
  an invalidated sample (`invalidation`) is dropped.
- Token counts are the evaluated model's `model_usage` of the sample (input, output, cache-read tokens; the last
  generation's `output.usage` when a log has no model_usage); latency is the sample's `total_time`.
- An evaluation still running (status `started`, an `.eval` without `header.json`) is refused.

`.eval` members are deflate- or zstd-compressed (zstd from inspect_ai 0.3.1xx on; Python's zipfile reads zstd
only from 3.14): zstd members are read with the `zstandard` package (`pip install 'ttc-lab[inspect]'`). A `.json`
log is read whole (it is one JSON object); an `.eval` log one sample member at a time."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from backend.errors import ImportFileError
from backend.importers.base import Block, ImporterEntry, as_correct
from backend.options import Options

ZSTD_METHOD = 93  # the zip compression method id of zstd (APPNOTE 4.4.5)
HEADER = "header.json"
SAMPLES_DIR = "samples/"
ATTACHMENT = "attachment://"
VALUE_TO_FLOAT = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}
"""inspect_ai's `value_to_float` defaults (scorer/_metric.py): CORRECT, PARTIAL, INCORRECT, NOANSWER."""


class InspectOptions(Options):
    scorer: str | None = Field(None, description="the scorer whose value says correct (required if there are several)")
    correct_values: list[bool | int | float | str] = Field(["C", 1], description="score values that are correct")
    incorrect_values: list[bool | int | float | str] = Field(["I", "N", 0], description="score values that are not")
    dataset: str | None = Field(None, description="the questions' dataset (default: the log's dataset name)")


def reader(options: InspectOptions):
    def read(paths: Sequence[Path]) -> Iterator[Block]:
        for path in paths:
            if path.suffix.lower() == ".eval":
                archive, header = _eval_archive(path)
                with archive:
                    yield from _log(path, header, _eval_samples(archive, path), options)
            else:
                header = _json_log(path)
                samples = header.get("samples") or []
                yield from _log(path, header, ((f"samples[{i}]", s) for i, s in enumerate(samples)), options)

    return read


def _log(path: Path, header: dict, samples: Iterator[tuple[str, Any]], options: InspectOptions) -> Iterator[Block]:
    where = HEADER if path.suffix.lower() == ".eval" else "-"
    status = header.get("status", "started")
    if status == "started":
        raise ImportFileError(
            path, where, "status", "'started': the evaluation has not finished; import its log once it has"
        )
    spec = header.get("eval")
    if not isinstance(spec, dict):
        raise ImportFileError(path, where, "eval", "missing: not an inspect_ai log")
    scorer = _scorer(path, where, header, options)
    model = spec.get("model")
    dataset = options.dataset or (spec.get("dataset") or {}).get("name")
    true_values, false_values = tuple(options.correct_values), tuple(options.incorrect_values)
    for record, s in samples:
        if not isinstance(s, dict):
            raise ImportFileError(path, record, "-", f"a {type(s).__name__}, not a sample")
        if s.get("invalidation") is not None:
            continue
        yield _sample(path, record, s, scorer, model, dataset, true_values, false_values)


def _scorer(path: Path, where: str, header: dict, options: InspectOptions) -> str:
    """The scorer whose values are the verdicts: the user's, or the log's only one."""
    spec_scorers = [s.get("name") for s in header["eval"].get("scorers") or [] if isinstance(s, dict)]
    result_scorers = [s.get("name") for s in (header.get("results") or {}).get("scores") or [] if isinstance(s, dict)]
    known = list(dict.fromkeys(n for n in (spec_scorers or result_scorers) if n))
    if options.scorer is not None:
        if known and options.scorer not in known:
            raise ImportFileError(path, where, "scorer", f"{options.scorer!r} did not score this log", ", ".join(known))
        return options.scorer
    if len(known) != 1:
        what = "no scorer" if not known else f"{len(known)} scorers"
        raise ImportFileError(path, where, "scorer", f"{what}: name the one that says correct (option scorer)",
                              ", ".join(known) or None)  # fmt: skip
    return known[0]


def _sample(path, record, s: dict, scorer, model, dataset, true_values, false_values) -> Block:
    sid, epoch = s.get("id"), s.get("epoch")
    if sid is None or isinstance(sid, (dict, list)):
        raise ImportFileError(path, record, "id", f"{sid!r} is not a sample id")
    if type(epoch) is not int or epoch < 1:
        raise ImportFileError(path, record, "epoch", f"{epoch!r} is not an epoch (1, 2, ...)")
    attachments = s.get("attachments") or {}
    output = s.get("output") or {}
    error, limit = s.get("error"), s.get("limit")
    score = (s.get("scores") or {}).get(scorer)
    failed = error is not None or limit is not None  # its score, if any, is not its verdict: no answer to vote with
    if failed:
        correct = False
        finish = "error" if error is not None else f"{(limit or {}).get('type', 'unknown')}_limit"
    else:
        if not isinstance(score, dict) or "value" not in score:
            raise ImportFileError(path, record, f"scores.{scorer}", "missing: the sample was not scored by it")
        value = score["value"]
        if isinstance(value, (dict, list)):
            raise ImportFileError(path, record, f"scores.{scorer}.value", f"a {type(value).__name__} of values, "
                                  "not one verdict")  # fmt: skip
        correct = as_correct(value, path, record, f"scores.{scorer}.value", true_values, false_values)
        choices = output.get("choices") or [{}]
        finish = choices[0].get("stop_reason")
    value = score.get("value") if isinstance(score, dict) and not failed else None
    numeric = (
        VALUE_TO_FLOAT.get(value)
        if isinstance(value, str)
        else float(value)
        if isinstance(value, (int, float))
        else None
    )
    usage = _usage(s, output, model)
    completion = _resolve(output.get("completion"), attachments)
    return Block(
        path,
        record,
        str(sid),
        {
            "task": "inspect",
            "dataset": dataset,
            "question": _input_text(s.get("input"), attachments),
            "reference": _reference(s.get("target")),
        },
        {
            "sample_idx": [epoch - 1],
            "completion": [completion if completion or error is None else None],
            "answer": [score.get("answer") if isinstance(score, dict) and not failed else None],
            "score": [numeric],
            "correct": [correct],
            "finish_reason": [finish],
            "grade_error": [f"sample error: {error.get('message')}"[:500] if isinstance(error, dict) else None],
            "prompt_tokens": [usage.get("input_tokens")],
            "completion_tokens": [usage.get("output_tokens")],
            "cached_prompt_tokens": [usage.get("input_tokens_cache_read")],
            "latency_s": [s.get("total_time")],
        },
    )


def _usage(s: dict, output: dict, model: str | None) -> dict:
    """The evaluated model's token usage over the sample (a scorer's grader model is another entry)."""
    per_model = s.get("model_usage") or {}
    if model in per_model:
        return per_model[model] or {}
    if len(per_model) == 1:
        return next(iter(per_model.values())) or {}
    return output.get("usage") or {} if not per_model else {}


def _resolve(text: Any, attachments: dict) -> Any:
    """inspect_ai moves long or repeated text to the sample's `attachments` (log/_condense.py): follow the link."""
    if isinstance(text, str) and text.startswith(ATTACHMENT):
        return attachments.get(text[len(ATTACHMENT) :], text)
    return text


def _input_text(value: Any, attachments: dict) -> str | None:
    """A sample's input: its text, or the text of its chat messages one after another."""
    if value is None or isinstance(value, str):
        return _resolve(value, attachments)
    parts = []
    for message in value if isinstance(value, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(_resolve(content, attachments))
        elif isinstance(content, list):
            parts.extend(_resolve(c.get("text"), attachments) for c in content if isinstance(c, dict) and c.get("text"))
    return "\n\n".join(parts)


def _reference(target: Any) -> str | None:
    if isinstance(target, list):
        return str(target[0]) if len(target) == 1 else json.dumps(target)
    return None if target is None else str(target)


def _json_log(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            log = json.load(f)
    except json.JSONDecodeError as e:
        raise ImportFileError(path, "-", "-", f"not valid JSON ({e.msg}): the log is truncated?") from None
    if not isinstance(log, dict):
        raise ImportFileError(path, "-", "-", f"a {type(log).__name__}, not an inspect_ai log")
    return log


def _eval_archive(path: Path) -> tuple[zipfile.ZipFile, dict]:
    """The open archive and its header; an archive with no header.json is an evaluation still running."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ImportFileError(path, "-", "-", f"not a readable .eval log, a zip archive ({e}): truncated?") from None
    try:
        if HEADER not in archive.namelist():
            raise ImportFileError(
                path, HEADER, "status", "missing: the evaluation has not finished (only its journal is written)"
            )
        header = _member(archive, path, HEADER)
        if not isinstance(header, dict):
            raise ImportFileError(path, HEADER, "-", "not an inspect_ai log header")
    except BaseException:
        archive.close()
        raise
    return archive, header


def _eval_samples(archive: zipfile.ZipFile, path: Path) -> Iterator[tuple[str, Any]]:
    # a sample logged twice has two members of one name; getinfo (and inspect) take the last
    names = archive.namelist()
    for name in dict.fromkeys(n for n in names if n.startswith(SAMPLES_DIR) and n.endswith(".json")):
        yield name, _member(archive, path, name)


def _member(archive: zipfile.ZipFile, path: Path, name: str) -> Any:
    info = archive.getinfo(name)
    try:
        if info.compress_type == ZSTD_METHOD and not hasattr(zipfile, "ZIP_ZSTANDARD"):
            data = _zstd_member(archive, path, info)
        else:
            with archive.open(info) as f:
                data = f.read()
        return json.loads(data)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ImportFileError(path, name, "-", f"unreadable ({e}): the archive is truncated?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImportFileError(path, name, "-", f"not valid JSON ({e})") from None


def _zstd_member(archive: zipfile.ZipFile, path: Path, info: zipfile.ZipInfo) -> bytes:
    """A zstd member's bytes: its raw data after the local header, decompressed across frames, CRC checked."""
    try:
        import zstandard
    except ImportError:
        raise ImportFileError(
            path, info.filename, "-", "zstd-compressed (inspect_ai's default); install the extra: "
            "pip install 'ttc-lab[inspect]' (the zstandard package)"
        ) from None  # fmt: skip
    fp = archive.fp
    assert fp is not None
    fp.seek(info.header_offset)
    local = fp.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    fp.seek(info.header_offset + 30 + name_len + extra_len)
    raw = fp.read(info.compress_size)
    if len(raw) < info.compress_size:
        raise EOFError("member data cut short")
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as r:
            data = r.read()
    except zstandard.ZstdError as e:
        raise zipfile.BadZipFile(f"zstd: {e}") from None
    if zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile("CRC mismatch")
    return data


ENTRY = ImporterEntry(
    "inspect",
    "inspect_ai evaluation logs (.eval or .json): epochs as samples, one scorer's values as the verdicts; errored "
    "and limit-hit samples kept as failed",
    InspectOptions,
    reader,
    version="1",
    suffixes=(".eval", ".json"),
    has_tokens=True,
)
