"""search-and-learn's output (huggingface/search-and-learn, Beeching, Tunstall & Rush 2024, "Scaling test-time
compute with open models"): `scripts/test_time_compute.py` maps its approach over a MATH-style dataset and saves
it as `{approach}_completions.jsonl` (src/sal/utils/data.py; or pushes it to the Hub, Parquet): the input row
(`problem`, `answer`, `unique_id`, `subject`, `level`, ...) plus, per problem, `completions` (N texts), `scores`
(per completion, the PRM's score of each step), `completion_tokens` (per completion; -1 for DVTS), `pred`, and
src/sal/utils/score.py's `agg_scores` and `pred_{weighted,maj,naive}@n` (its own votes: not imported, ttc-lab
votes from the samples).

- best_of_n rows are pools: N independent samples of one prompt (src/sal/search/best_of_n.py). Each completion is a
  sample; its PRM scores, aggregated as search-and-learn does (`aggregate_scores`: last step, min or product;
  `agg_strategy`), are a verifier's scores (`verifier`), so best-of-N and weighted votes read them.
- beam_search and dvts rows are the final beams of one search (src/sal/search/beam_search.py, diverse_verifier_tree
  _search.py): correlated, and padded with copies up to N when fewer finished. Read as an i.i.d. pool they would
  overstate coverage and votes, and the store has no place for imported search results: they are refused.
- The rows carry no verdicts: each completion is graded as the math_jsonl task grades (its final answer, the last
  "Answer:" or \\boxed{}, equal to `answer` by math-verify: backend/tasks/math_jsonl.grade_math); the paper graded
  with Qwen2.5-Math's evaluation, which can differ on odd answer forms.

The approach is the file name's (`best_of_n_completions.jsonl`) unless `approach` says it."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from backend.errors import ImportFileError
from backend.importers.base import Block, ImporterEntry
from backend.importers.records import records
from backend.options import Options
from backend.tasks.math_jsonl import grade_math

APPROACHES = ("best_of_n", "beam_search", "dvts")
ID_COLUMNS = ("unique_id", "id")


class SearchAndLearnOptions(Options):
    approach: Literal["auto", "best_of_n", "beam_search", "dvts"] = Field(
        "auto", description="the approach that wrote the rows (auto: from the file name, {approach}_completions)"
    )
    agg_strategy: Literal["last", "min", "prod"] = Field(
        "last", description="how a completion's per-step PRM scores make its score (search-and-learn's)"
    )
    verifier: str = Field("prm", description="the name the PRM's scores are stored under")
    dataset: str | None = Field(None, description="the problems' dataset (e.g. MATH-500)")


def aggregate(steps: list[float], how: str) -> float:
    """src/sal/utils/score.py, `aggregate_scores`."""
    if how == "min":
        return min(steps)
    if how == "prod":
        return math.prod(steps)
    return steps[-1]


def _approach(path: Path, options: SearchAndLearnOptions) -> str:
    if options.approach != "auto":
        return options.approach
    found = [a for a in APPROACHES if path.name.startswith(f"{a}_completions")]
    if not found:
        raise ImportFileError(path, "-", "approach", "not in the file name: say which wrote it (option approach)",
                              ", ".join(APPROACHES))  # fmt: skip
    return found[0]


def reader(options: SearchAndLearnOptions):
    def read(paths: Sequence[Path]) -> Iterator[Block]:
        for path in paths:  # every file's approach checked before any row is read
            approach = _approach(path, options)
            if approach != "best_of_n":
                raise ImportFileError(
                    path, "-", "approach", f"{approach} rows are the final beams of one search (correlated, padded "
                    "with copies), not an i.i.d. pool, and the store has no place for imported search results yet",
                    "best_of_n",
                )  # fmt: skip
        for path in paths:
            for n, rec in records(path):
                yield _problem(path, n, rec, options)

    return read


def _problem(path: Path, n: int, rec: dict, options: SearchAndLearnOptions) -> Block:
    for key in ("problem", "answer", "completions", "scores"):
        if rec.get(key) is None:
            raise ImportFileError(path, n, key, "missing")
    completions, steps = rec["completions"], rec["scores"]
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise ImportFileError(path, n, "completions", "not a list of texts")
    if not isinstance(steps, list) or len(steps) != len(completions):
        got = len(steps) if isinstance(steps, list) else type(steps).__name__
        raise ImportFileError(path, n, "scores", f"{got} score lists for {len(completions)} completions: must align")
    scores = []
    for i, s in enumerate(steps):
        if not isinstance(s, list) or not s or not all(isinstance(v, (int, float)) for v in s):
            raise ImportFileError(path, n, f"scores[{i}]", f"{s!r} is not a list of step scores")
        scores.append(float(aggregate(s, options.agg_strategy)))
    tokens = rec.get("completion_tokens")
    if isinstance(tokens, list):
        if len(tokens) != len(completions):
            raise ImportFileError(path, n, "completion_tokens", f"{len(tokens)} counts for {len(completions)} "
                                  "completions: must align")  # fmt: skip
        tokens = [None if isinstance(t, int) and t < 0 else t for t in tokens]
    else:
        tokens = [None] * len(completions)  # DVTS writes -1: not counted
    reference = str(rec["answer"])
    grades = [grade_math(reference, c) for c in completions]
    qid = next((rec[c] for c in ID_COLUMNS if rec.get(c) is not None), n)
    return Block(
        path,
        n,
        str(qid),
        {
            "task": "search_and_learn",
            "dataset": options.dataset,
            "question": str(rec["problem"]),
            "reference": reference,
        },
        {
            "completion": completions,
            "answer": [g.answer for g in grades],
            "correct": [g.correct for g in grades],
            "completion_tokens": tokens,
        },
        {options.verifier: scores},
    )


ENTRY = ImporterEntry(
    "search_and_learn",
    "search-and-learn's {approach}_completions rows (JSONL or Parquet): best_of_n pools with their PRM scores as a "
    "verifier's; beam_search and dvts final beams are refused (not a pool)",
    SearchAndLearnOptions,
    reader,
    version="1",
    suffixes=(".jsonl", ".parquet", ".json"),
    has_tokens=True,
    has_verifier_scores=True,
)
