"""lm-evaluation-harness `--log_samples` output (EleutherAI/lm-evaluation-harness; the writer is
`lm_eval/loggers/evaluation_tracker.py`, the records `lm_eval/evaluator.py`): `results_<ts>.json` (the run's
configs: per task its `repeats`, `filter_list`, `metric_list`) and, per task, `samples_<task>_<ts>.jsonl`, one line
per document and filter: `doc_id`, `doc`, `target`, `arguments` (the prompt in `gen_args_0.arg_0`), `resps` (per
request, the model's responses: `repeats` of them), `filtered_resps` (per request, what the filter made of them),
`filter`, `metrics` (the names) and each metric's value for the document.

- A samples file is paired with the `results_<ts>.json` of its timestamp, given with it or beside it.
- One row per response of `resps` (a task's `repeats` are samples of one question), read from the lines of one
  filter (option `filter`; by default the task's one filter that keeps an answer per response, i.e. has no
  `take_first` or `majority_vote` step): the answers are that filter's `filtered_resps` (lm-eval's "[invalid]",
  the regex filter's fallback, is no answer).
- Correctness is the task's metric (option `metric` when the records hold several). lm-eval scores a document, not
  a response: `exact_match` of a filter that keeps k answers is the share of the k that match
  (`exact_match_hf_evaluate` broadcasts them against the target), so each answer is re-graded with the task's own
  exact_match settings (ignore_case, ignore_punctuation, ignore_numbers, regexes_to_ignore) and the share checked
  against the record's value. Any other metric is taken as it is: one response, or a value of 0 or 1 for all.
- Token counts, latencies and finish reasons are not in the format: NULL (token counts unless `--tokenizer`).
- Only generate_until tasks hold generations; loglikelihood and multiple-choice tasks score choices and are
  refused."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from backend.errors import ImportFileError
from backend.importers.base import Block, ImporterEntry, as_correct
from backend.importers.records import jsonl_records
from backend.options import Options

SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<ts>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")
COLLAPSING = ("take_first", "majority_vote")
"""Filter steps that keep one answer of a document's responses (lm_eval/filters/selection.py)."""
INVALID = "[invalid]"
"""The regex filter's default fallback (lm_eval/filters/extraction.py): no answer was found."""


class LmEvalOptions(Options):
    filter: str | None = Field(
        None, description="the filter whose answers are imported (default: the task's one filter that keeps an "
        "answer per response)"
    )  # fmt: skip
    metric: str | None = Field(None, description="the metric that says correct (required if the records hold several)")


def reader(options: LmEvalOptions):
    def read(paths: Sequence[Path]) -> Iterator[Block]:
        given = {p.name: p for p in paths}
        for path in paths:
            if path.suffix.lower() == ".json":
                continue  # a results file: read with its samples
            m = SAMPLES_NAME.match(path.name)
            if m is None:
                raise ImportFileError(path, "-", "name", "not a samples file of lm-eval", "samples_<task>_<ts>.jsonl")
            task, ts = m["task"], m["ts"]
            results = _results(path, ts, given)
            yield from _task(path, task, results, options)

    return read


def _results(path: Path, ts: str, given: dict[str, Path]) -> dict:
    name = f"results_{ts}.json"
    found = given.get(name) or (path.parent / name if (path.parent / name).is_file() else None)
    if found is None:
        raise ImportFileError(path, "-", "results", f"no {name} given or beside it: lm-eval writes the task's "
                              "configs there (filters, metrics, repeats)")  # fmt: skip
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ImportFileError(found, "-", "-", f"not valid JSON ({e.msg}): truncated?") from None
    if not isinstance(data, dict) or not isinstance(data.get("configs"), dict):
        raise ImportFileError(found, "-", "configs", "missing: not lm-eval's results file")
    return data


def _task(path: Path, task: str, results: dict, options: LmEvalOptions) -> Iterator[Block]:
    config = results["configs"].get(task)
    if not isinstance(config, dict):
        raise ImportFileError(path, "-", "configs", f"the results file has no config of task {task!r}",
                              ", ".join(results["configs"]))  # fmt: skip
    if config.get("output_type", "generate_until") != "generate_until":
        raise ImportFileError(path, "-", "output_type", f"{config.get('output_type')!r}: the task scores choices, "
                              "it holds no generations to import", "generate_until")  # fmt: skip
    filters = _filters(config)
    chosen = options.filter or _per_response_filter(path, filters)
    if chosen not in filters:
        raise ImportFileError(path, "-", "filter", f"{chosen!r} is not a filter of task {task}", ", ".join(filters))
    grading = _exact_match_settings(config)
    seen = 0
    for n, rec in jsonl_records(path):
        if rec.get("filter") != chosen:
            continue
        seen += 1
        yield _doc(path, n, task, rec, options.metric, grading)
    if not seen:
        raise ImportFileError(path, "-", "filter", f"no record of filter {chosen!r}", ", ".join(filters))


def _filters(config: dict) -> dict[str, list[str]]:
    """Each filter's step names, from the task's filter_list (lm-eval's default is "none", a take_first)."""
    out: dict[str, list[str]] = {}
    for f in config.get("filter_list") or []:
        if isinstance(f, dict) and f.get("name"):
            out[f["name"]] = [str(s.get("function")) for s in f.get("filter") or [] if isinstance(s, dict)]
    return out or {"none": ["take_first"]}


def _per_response_filter(path: Path, filters: dict[str, list[str]]) -> str:
    keeping = [name for name, steps in filters.items() if not any(s in COLLAPSING for s in steps)]
    if len(keeping) == 1:
        return keeping[0]
    if len(filters) == 1:
        return next(iter(filters))  # one response per document, or the records will say it collapses
    what = "no filter keeps" if not keeping else f"{len(keeping)} filters keep"
    raise ImportFileError(path, "-", "filter", f"{what} an answer per response: name one (option filter)",
                          ", ".join(keeping or filters))  # fmt: skip


def _exact_match_settings(config: dict) -> dict[str, Any]:
    for m in config.get("metric_list") or []:
        if isinstance(m, dict) and m.get("metric") == "exact_match":
            keys = ("regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers")
            return {k: m[k] for k in keys if k in m}
    return {}


def _doc(path: Path, n: int, task: str, rec: dict, metric: str | None, grading: dict) -> Block:
    resps, filtered = rec.get("resps"), rec.get("filtered_resps")
    for key, value in (("resps", resps), ("filtered_resps", filtered)):
        if not isinstance(value, list) or len(value) != 1:
            raise ImportFileError(path, n, key, "not one request's list: not a generate_until record")
    assert isinstance(resps, list) and isinstance(filtered, list)
    responses = resps[0] if isinstance(resps[0], list) else [resps[0]]
    answers = filtered[0] if isinstance(filtered[0], list) else [filtered[0]]
    k = len(responses)
    if len(answers) != k:
        raise ImportFileError(path, n, "filtered_resps", f"{len(answers)} answers for {k} responses: filter "
                              f"{rec.get('filter')!r} does not keep one per response (choose one that does, "
                              "option filter)")  # fmt: skip
    names = rec.get("metrics") or []
    if metric is None:
        if len(names) != 1:
            raise ImportFileError(path, n, "metrics", f"{len(names)} metrics: name the one that says correct "
                                  "(option metric)", ", ".join(map(str, names)) or None)  # fmt: skip
        metric = str(names[0])
    if metric not in rec:
        raise ImportFileError(path, n, metric, "missing: the records hold no such metric", ", ".join(map(str, names)))
    value = rec[metric]
    target = rec.get("target")
    texts = [None if a is None or a == INVALID else str(a) for a in answers]
    if metric == "exact_match":
        correct = [a is not None and _matches(str(a), str(target), grading) for a in answers]
        if not isinstance(value, (int, float)) or abs(sum(correct) / k - float(value)) > 1e-9:
            raise ImportFileError(path, n, metric, f"{value!r}, but {sum(correct)} of {k} answers match the "
                                  f"target {target!r} by the task's exact_match settings")  # fmt: skip
    elif k == 1 or value in (0, 1):
        correct = [as_correct(value, path, n, metric)] * k
    else:
        raise ImportFileError(path, n, metric, f"{value!r} scores the document's {k} responses together: not a "
                              "verdict per response (exact_match is re-graded per response)")  # fmt: skip
    args = rec.get("arguments") or {}
    first = args.get("gen_args_0") if isinstance(args, dict) else None
    prompt = first.get("arg_0") if isinstance(first, dict) else None
    doc_id = rec.get("doc_id", n)
    return Block(
        path,
        n,
        f"{task}/{doc_id}",
        {"task": "lm_eval", "dataset": task, "question": prompt, "reference": None if target is None else str(target)},
        {
            "completion": [None if r is None else str(r) for r in responses],
            "answer": texts,
            "correct": correct,
            "prompt": [prompt] * k,
        },
    )


def _matches(answer: str, target: str, settings: dict) -> bool:
    """lm-eval's exact_match_hf_evaluate (lm_eval/api/metrics.py) for one prediction, in its order of steps."""
    for pattern in settings.get("regexes_to_ignore") or []:
        answer, target = re.sub(pattern, "", answer), re.sub(pattern, "", target)
    if settings.get("ignore_case"):
        answer, target = answer.lower(), target.lower()
    if settings.get("ignore_punctuation"):
        table = str.maketrans("", "", string.punctuation)
        answer, target = answer.translate(table), target.translate(table)
    if settings.get("ignore_numbers"):
        table = str.maketrans("", "", string.digits)
        answer, target = answer.translate(table), target.translate(table)
    return answer == target


ENTRY = ImporterEntry(
    "lm_eval",
    "lm-evaluation-harness --log_samples output (samples_<task>_<ts>.jsonl with its results_<ts>.json): each "
    "response a sample, answers from one filter, correctness from the task's metric",
    LmEvalOptions,
    reader,
    version="1",
    suffixes=(".jsonl", ".json"),
)
