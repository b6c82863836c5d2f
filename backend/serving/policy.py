"""A compute-optimal policy frozen from a study: per predicted-difficulty bin × FLOP budget, the configuration the
study's cross-validation chose, as a fragment the runtime executes, with the held-out accuracy the study measured.

Snell et al. 2024 (§3, §5) choose a configuration per difficulty bin and budget; a deployed system has no ground
truth, so only their *predicted* difficulty can be served: the question's mean verifier score, binned by the
thresholds that split the study's questions (backend/metrics/difficulty.py `predicted_bins`). A served question
has no pool, so the runtime estimates that mean from a small pilot (`Predictor`), whose spend is the request's.

Which configuration a cell serves: the study's 2-fold cross-validation picks one per half of the bin's questions
(`chosen_fold0/1`, as `ttc compute-optimal` prints them) and scores each on the other half; the accuracy it reports
is the accuracy of that *selection rule*. Deployed, the rule is applied once to all of the bin's questions
(`configuration`): the candidate that covers every question of the bin with the highest mean accuracy, the first in
the study's order on ties (backend/metrics/compute_optimal.py `TIE_ATOL`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.config import parse_spec
from backend.errors import SpecError, StoreError
from backend.metrics.compute_optimal import TIE_ATOL
from backend.metrics.strategy_table import BUDGET_MERGE_RTOL, RECORD_KEYS, load_searches, pool_rule
from backend.metrics.study import ComputeOptimalStudy
from backend.report import open_study
from backend.verifiers import VERIFIERS

POLICY_FORMAT = 1
SERVABLE_POOL_RULES = ("majority", "best_of_n", "weighted_best_of_n")
"""Pool rules the runtime runs with the strategy of the same name (backend/strategies): the confidence-aware rules
read per-token logprobs the strategies do not select by, so a study that picks one cannot be served yet."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cell(Strict):
    """One bin × budget: what to run, and what the study measured of it."""

    budget_flops: float = Field(gt=0)
    budget_samples: float
    configuration: str  # the study's name of the configuration served
    kind: Literal["pool", "search"]
    strategy: str  # a backend.strategies name
    config: dict[str, Any]  # the strategy's options (a pool rule: n = the most samples the study's cell drew)
    verifier: str | None
    chosen_fold0: str | None
    chosen_fold1: str | None
    held_out_accuracy: float | None
    interval: tuple[float, float] | None  # the study's bootstrap band of the held-out accuracy (None: not computed)


class Bin(Strict):
    level: int = Field(ge=1)  # 1 = easiest, as in the study
    questions: int
    cells: list[Cell]  # increasing budget


class Predictor(Strict):
    """Predicted difficulty (Snell et al. 2024, §3): the mean verifier score of a question's samples. The study
    averaged its whole pool; a served question averages a pilot of `pilot_samples` scored samples, drawn with
    best-of-N's own sampling and scoring, so the estimate is the study's statistic with fewer samples."""

    kind: Literal["mean_verifier_score"] = "mean_verifier_score"
    verifier: str
    pilot_samples: int = Field(ge=1)
    max_tokens: int = Field(ge=1)
    temperature: float = Field(ge=0)
    thresholds: list[float]  # decreasing; a mean score s is in bin 1 + #{t : s < t}
    study_values: tuple[float, float]  # the lowest and highest mean score among the study's questions


class Policy(Strict):
    format: int = POLICY_FORMAT
    version: str  # content hash of everything else
    model: str
    engine: dict[str, Any]
    verifier: str
    verifier_options: dict[str, Any] | None
    spec: dict[str, Any]  # the study's first run spec: the task's prompt, sampling settings, engine
    runs: list[str]
    bins_kind: str
    predictor: Predictor
    bins: list[Bin]
    baseline: str
    held_out: str  # what the study's cross-validation holds out
    notes: list[str]

    def bin_of(self, mean_score: float) -> int:
        return 1 + int(sum(mean_score < t for t in self.predictor.thresholds))

    def cheapest(self, level: int) -> float:
        return self.bins[level - 1].cells[0].budget_flops

    def cell_for(self, level: int, budget_flops: float) -> Cell | None:
        """The cell of the largest budget <= `budget_flops` (None: even the bin's cheapest costs more)."""
        fitting = [c for c in self.bins[level - 1].cells if c.budget_flops <= budget_flops]
        return fitting[-1] if fitting else None


def content_version(body: dict) -> str:
    """sha256 of the policy's canonical JSON without its version: the same study frozen the same way is the same
    version, and any edit changes it."""
    data = {k: v for k, v in body.items() if k != "version"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=float).encode()).hexdigest()[:16]


def thresholds(values: np.ndarray, levels: np.ndarray, n_bins: int) -> list[float]:
    """Bin boundaries between neighbouring levels: midway between the lowest score of level i and the highest of
    level i + 1 (equal where ties were split by rank: a served score on the boundary goes to the easier bin)."""
    return [float((values[levels == i].min() + values[levels == i + 1].max()) / 2) for i in range(1, n_bins)]


def servable(study: ComputeOptimalStudy) -> np.ndarray:
    """(C,) which of the study's configurations the server can run: every search, and the pool rules it draws."""
    t = study.table
    return np.array(
        [t.kind[c] != "pool" or pool_rule(n) in SERVABLE_POOL_RULES for c, n in enumerate(t.configurations)]
    )


def deployed_choice(study: ComputeOptimalStudy, mask: np.ndarray, b: int, allowed: np.ndarray | None = None) -> int:
    """The selection rule on all of a bin's questions: the configuration covering each of them with the highest mean
    accuracy at budget `b` (first on ties), among the `allowed` ones; -1 where none covers the bin."""
    acc = study.table.accuracy[:, b, :][:, mask]  # (C, Q_bin)
    full = ~np.isnan(acc).any(axis=1) & (True if allowed is None else allowed)
    mean = np.where(full, np.nan_to_num(acc).mean(axis=1), -np.inf)
    if not np.isfinite(mean).any():
        return -1
    return int(np.argmax(mean >= mean.max() - TIE_ATOL))


def _executable(study: ComputeOptimalStudy, c: int, b: int, mask: np.ndarray, spec: dict, searches) -> dict:
    """The cell's configuration as (kind, strategy, config, verifier)."""
    t = study.table
    name = t.configurations[c]
    if t.kind[c] == "pool":
        rule = pool_rule(name)
        if rule not in SERVABLE_POOL_RULES:
            raise StoreError(
                f"policy: the study chose {name!r}, which the server cannot run yet; servable pool rules: "
                f"{', '.join(SERVABLE_POOL_RULES)} and every search strategy"
            )
        n = int(np.nanmax(t.samples[c, b, mask]))
        config = {"n": n, "max_tokens": spec["max_tokens"], "temperature": spec["temperature"]}
        return dict(kind="pool", strategy=rule, config=config, verifier=study.verifier if "[" in name else None)
    rows = searches[searches["label"] == name]
    at = rows[np.abs(rows["budget"] - t.budgets[b]) <= t.budgets[b] * BUDGET_MERGE_RTOL]
    rows = at if len(at) else rows  # placed at a lower cap's run (it spent less than this budget)
    record = json.loads(rows["config"].iloc[-1])
    config = {k: v for k, v in record.items() if k not in RECORD_KEYS}
    return dict(kind="search", strategy=str(t.strategy[c]), config=config, verifier=record.get("verifier"))


def freeze_policy(
    con: duckdb.DuckDBPyConnection,
    root: object,
    runs: Sequence[str] | None = None,
    model: str | None = None,
    *,
    n_bins: int = 5,
    pilot_samples: int = 2,
    seed: int = 0,
    band_boot: int | None = None,
) -> Policy:
    """Freeze the study of `runs` (default: the comparable selection) on predicted bins into a Policy. Refuses, with
    one line, a study without predicted bins, a bin no configuration covers at any budget, or a chosen configuration
    the server cannot run."""
    if pilot_samples < 1:
        raise SpecError("--pilot-samples", f"{pilot_samples}", "a whole number of pilot samples, at least 1")
    opened = open_study(con, root, runs, model, bins="predicted", n_bins=n_bins, seed=seed, band_boot=band_boot)
    study = opened.study
    if not study.bins.kind.startswith("predicted"):
        why = next((n for n in study.notes if n.endswith("using oracle bins")), "no predicted bins")
        raise StoreError(
            f"policy: this study supports only oracle bins ({why.removesuffix('; using oracle bins')}); a served "
            "question has no correct answer to bin by, so its policy needs predicted bins"
        )
    assert study.verifier is not None  # predicted bins need one
    if VERIFIERS.lookup(study.verifier, "verifier").needs_ground_truth:
        raise StoreError(
            f"policy: this study's predicted bins come from verifier {study.verifier!r}, which needs ground truth; a "
            "served question has no correct answer, so its policy needs a study scored by a deployable verifier"
        )
    spec = _first_spec(con, opened.runs)
    searches = load_searches(con, list(opened.runs), study.model)
    report = study.report()
    t, bins = study.table, study.bins
    served, notes, can_run = [], list(study.notes), servable(study)
    for i, level in enumerate(int(lv) for lv in study.result.levels):
        mask = bins.level == level
        rows = report[report["bin"] == str(level)].reset_index(drop=True)
        cells = []
        for b in range(len(t.budgets)):
            c, best = deployed_choice(study, mask, b, can_run), deployed_choice(study, mask, b)
            if best >= 0 and best != c:
                notes.append(
                    f"bin {level} at ≈ {t.budget_samples[b]:.3g} samples' FLOPs: {t.configurations[best]} was best on "
                    f"the bin, but the server cannot run it yet; served instead: "
                    + (t.configurations[c] if c >= 0 else "nothing (no servable configuration covers the bin)")
                )
            if c < 0:
                continue
            row = rows.iloc[b]
            lo, hi = row["cv_lo"], row["cv_hi"]
            held = study.result.accuracy_by_bin[i, b]
            cells.append(
                Cell(
                    budget_flops=float(t.budgets[b]),
                    budget_samples=float(t.budget_samples[b]),
                    configuration=t.configurations[c],
                    chosen_fold0=_name(row["chosen_fold0"]),
                    chosen_fold1=_name(row["chosen_fold1"]),
                    held_out_accuracy=None if np.isnan(held) else float(held),
                    interval=None if np.isnan(lo) or np.isnan(hi) else (float(lo), float(hi)),
                    **_executable(study, c, b, mask, spec, searches),
                )
            )
        if not cells:
            raise StoreError(
                f"policy: difficulty bin {level} has no configuration that ran on all its {int(mask.sum())} questions "
                "at any budget; run the study's strategies on every question (or use fewer --n-bins)"
            )
        served.append(Bin(level=level, questions=int(mask.sum()), cells=cells))
    values = np.asarray(bins.value, dtype=np.float64)
    verifier_options = dict(parse_spec(spec, "the study's run spec").verifier_specs()).get(study.verifier) or None
    body = dict(
        format=POLICY_FORMAT,
        version="",
        model=study.model,
        engine=spec["engine"],
        verifier=study.verifier,
        verifier_options=verifier_options,
        spec=spec,
        runs=list(opened.runs),
        bins_kind=bins.kind,
        predictor=Predictor(
            verifier=study.verifier,
            pilot_samples=pilot_samples,
            max_tokens=spec["max_tokens"],
            temperature=spec["temperature"],
            thresholds=thresholds(values, bins.level, bins.n_bins),
            study_values=(float(values.min()), float(values.max())),
        ).model_dump(mode="json"),
        bins=[b.model_dump(mode="json") for b in served],
        baseline=study.result.baseline,
        held_out=study.held_out,
        notes=notes,
    )
    body["version"] = content_version(body)
    return Policy.model_validate(body)


def _name(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_spec(con: duckdb.DuckDBPyConnection, runs: Sequence[str]) -> dict:
    rows = con.execute(
        "SELECT spec_json FROM runs WHERE list_contains(?, run_id) AND spec_json IS NOT NULL ORDER BY created_at",
        [list(runs)],
    ).fetchall()
    for (raw,) in rows:
        spec = json.loads(raw)
        if isinstance(spec, dict) and "engine" in spec and "task" in spec:
            return spec
    raise StoreError(
        "policy: none of the study's runs records the run spec it was sampled with (an imported run?); the server "
        "needs the task's prompt and the engine"
    )


def write_policy(policy: Policy, path: str | Path) -> None:
    """Written whole to a temp name and renamed: a failed freeze leaves no half policy."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(policy.model_dump(mode="json"), indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def load_policy(path: str | Path) -> Policy:
    """A policy file, checked: its schema (unknown fields refused) and its version against its content."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise SpecError("--policy", f"cannot read {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise SpecError("--policy", f"{path} is not JSON ({e.msg} at line {e.lineno})") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise SpecError("--policy", f"{path}: {where}: {err['msg']}", "a file written by `ttc policy freeze`") from None
    if policy.format != POLICY_FORMAT:
        raise SpecError("--policy", f"{path}: format {policy.format}", str(POLICY_FORMAT))
    if content_version(policy.model_dump(mode="json")) != policy.version:
        raise SpecError("--policy", f"{path}: its content does not match its version {policy.version} (edited?)")
    problem = inconsistency(policy)
    if problem is not None:
        raise SpecError("--policy", f"{path}: {problem[0]}: {problem[1]}", "a file written by `ttc policy freeze`")
    return policy


def inconsistency(policy: Policy) -> tuple[str, str] | None:
    """(field, what) of the first rule a policy the runtime can apply breaks, None when it breaks none: bins 1..k in
    order, each with cells of increasing budget, k − 1 non-increasing thresholds, the predictor's verifier the
    policy's."""
    levels = [b.level for b in policy.bins]
    if levels != list(range(1, len(levels) + 1)) or not levels:
        return "bins", f"levels {levels}; the runtime needs bins 1, 2, ... in order"
    for i, b in enumerate(policy.bins):
        budgets = [c.budget_flops for c in b.cells]
        if not budgets:
            return f"bins.{i}.cells", "no cell"
        if any(x >= y for x, y in zip(budgets, budgets[1:])):
            return f"bins.{i}.cells", f"budgets {budgets} do not increase"
    t = policy.predictor.thresholds
    if len(t) != len(levels) - 1:
        return "predictor.thresholds", f"{len(t)} thresholds for {len(levels)} bins; needs {len(levels) - 1}"
    if any(x < y for x, y in zip(t, t[1:])):
        return "predictor.thresholds", f"{t} increase; bin 1 (easiest) has the highest scores, so they must not"
    if policy.predictor.verifier != policy.verifier:
        return "predictor.verifier", f"{policy.predictor.verifier!r} is not the policy's verifier {policy.verifier!r}"
    return None
