"""A stored study's figures as Markdown, written by a command, never typed.

README's and BENCHMARKS' study readings live between markers,

    <!-- ttc report --store examples/studies/compute-optimal --n-bins 4 -->
    ...generated...
    <!-- /ttc report -->

and `ttc report --refresh README.md BENCHMARKS.md` re-renders every marked section from the store its marker names
(paths relative to the file's folder). tests/unit/test_report.py fails when a section differs from what the
command produces on the committed studies (examples/studies/), so a figure cannot outlive the study it came from.
The rendering reads only the study (`backend/metrics/study.py`: the numbers the Compute-optimal page and
`ttc compute-optimal` give) and the store's own record of the runs (sizes, knobs, wall time, data quality)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from backend.errors import SpecError, StoreError
from backend.metrics.compute_optimal import BAND_BOOT, ComputeOptimalResult
from backend.metrics.quality import DataQuality, data_quality
from backend.metrics.strategy_table import POOL_EXHAUSTED, UNAFFORDABLE, StrategyTable
from backend.metrics.study import AUTO, COMPUTE_OPTIMAL, ComputeOptimalStudy, compute_optimal_study
from backend.run_selection import default_runs_of

MARKER = re.compile(r"<!-- ttc report (?P<args>[^\n>]*?) -->\n(?P<body>.*?)<!-- /ttc report -->", re.S)
"""One marked section: the command's arguments in the opening marker, the generated Markdown up to the closing one."""


@dataclass(frozen=True)
class OpenedStudy:
    """A compute-optimal study with the run selection it was built from."""

    study: ComputeOptimalStudy
    runs: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]  # (run_id, why): runs of the store the default selection did not pool


def check_study_arguments(n_bins: int, band_boot: int | None = None) -> None:
    """Checked before a store is opened, so a bad flag is reported as itself."""
    if n_bins < 1:
        raise SpecError("--n-bins", f"{n_bins} bins", "a whole number of difficulty bins, at least 1")
    if band_boot is not None and band_boot < 0:
        raise SpecError("--band-boot", f"{band_boot} resamples", "a whole number of resamples, 0 for no band")


def open_study(
    con: duckdb.DuckDBPyConnection,
    root: object,
    runs: Sequence[str] | None = None,
    model: str | None = None,
    *,
    verifier: str | None = AUTO,
    bins: str = "oracle",
    n_bins: int = 5,
    seed: int = 0,
    band_boot: int | None = None,
    on_left_out: Callable[[str, str], None] | None = None,
) -> OpenedStudy:
    """The study `ttc compute-optimal` and `ttc report` print: the given runs, else the comparable default
    (backend/run_selection.py); the given model, else the only one. Typed errors name the flag and what is allowed."""
    check_study_arguments(n_bins, band_boot)
    left_out: tuple[tuple[str, str], ...] = ()
    if runs:
        chosen = list(runs)
    else:
        default = default_runs_of(con)
        chosen, left_out = list(default.run_ids), default.left_out
        if on_left_out is not None:  # said before any error below
            for run_id, why in left_out:
                on_left_out(run_id, why)
        if not chosen and left_out:
            raise StoreError(
                f"--run: {root} holds no finished, non-adaptive run to analyse by default; allowed: name runs "
                "with --run: " + ", ".join(f"{r} ({why})" for r, why in left_out)
            )
    if not chosen:
        raise StoreError(f"--store: {root} holds no sampling runs; run a spec first (ttc run SPEC --store DIR)")
    models = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT model FROM samples WHERE list_contains(?, run_id) ORDER BY 1", [chosen]
        ).fetchall()
    ]
    if not models:
        raise StoreError(
            f'--run: no samples in run(s) {", ".join(chosen)}; allowed: the run ids that `ttc sql "select distinct run_id from runs"` lists'
        )
    if model is not None and model not in models:
        raise StoreError(f"--model: {model!r} has no samples in these runs; allowed: {', '.join(models)}")
    if model is None and len(models) > 1:
        raise StoreError(f"--model: these runs hold several models; pick one of: {', '.join(models)}")
    try:
        study = compute_optimal_study(
            con,
            chosen,
            model or models[0],
            verifier=verifier,
            bins=bins,
            n_bins=n_bins,
            seed=seed,
            band_boot=BAND_BOOT if band_boot is None else band_boot,
        )
    except ValueError as e:
        raise StoreError(f"compute-optimal: {e}") from None
    return OpenedStudy(study, tuple(chosen), left_out)


@dataclass(frozen=True)
class StudyRecord:
    """What the store recorded of the study's runs, beside the analysis: names, engine, knobs, time, data quality."""

    names: tuple[str, ...]
    engines: tuple[str, ...]
    max_tokens: int | None
    samples_per_question: int | None
    wall_s: float | None  # first run's start to the last run's finish
    quality: DataQuality  # the pool's cut, unanswered and ungraded samples (backend/metrics/quality.py)


def study_record(con: duckdb.DuckDBPyConnection, runs: Sequence[str], model: str) -> StudyRecord:
    rows = con.execute(
        "SELECT name, spec_json, started_at, finished_at FROM runs WHERE list_contains(?, run_id) ORDER BY created_at",
        [list(runs)],
    ).fetchall()
    specs = [json.loads(r[1]) for r in rows if r[1]]
    engines = tuple(dict.fromkeys(s.get("engine", {}).get("kind", "?") for s in specs))
    max_tokens = {s.get("max_tokens") for s in specs}
    per_q = {s.get("samples_per_question") for s in specs}
    starts = [r[2] for r in rows if r[2] is not None]
    ends = [r[3] for r in rows if r[3] is not None]
    wall = (pd.Timestamp(max(ends)) - pd.Timestamp(min(starts))).total_seconds() if starts and ends else None
    return StudyRecord(
        names=tuple(dict.fromkeys(r[0] for r in rows)),
        engines=engines,
        max_tokens=max_tokens.pop() if len(max_tokens) == 1 else None,
        samples_per_question=per_q.pop() if len(per_q) == 1 else None,
        wall_s=wall,
        quality=data_quality(con, runs, models=[model]),
    )


def _acc(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _budget(samples: float) -> str:
    return f"≈ {samples:.3g}"


def _efficiency(value: float, lower_bound: bool) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{'≥ ' if lower_bound else ''}{value:.2g}×"


def _difference(row: pd.Series) -> str:
    if row["vs_baseline_questions_paired"] == 0:
        return "—"
    paired, n = int(row["vs_baseline_questions_paired"]), int(row["questions"])
    return (
        f"{row['vs_baseline_difference']:+.2f} [{row['vs_baseline_ci_low']:+.2f}, {row['vs_baseline_ci_high']:+.2f}], "
        f"p = {row['vs_baseline_p_value']:.2g}" + (f" (on the {paired} of {n} both ran)" if paired < n else "")
    )


def _chosen(row: pd.Series) -> str:
    picks = [p for p in (row["chosen_fold0"], row["chosen_fold1"]) if isinstance(p, str) and p]
    if not picks:
        return "—"
    return f"`{picks[0]}`" if len(set(picks)) == 1 else " / ".join(f"`{p}`" for p in picks)


def headline(report: pd.DataFrame, baseline: str) -> str:
    """The study's headline comparison: the cross-validated policy against the baseline over all questions at the
    largest budget, with its interval, its paired test and what it would take to settle it."""
    row = report[report["bin"] == "all"].sort_values("budget_flops").iloc[-1]
    n = int(row["questions"])
    if row["vs_baseline_questions_paired"] == 0:
        return f"At {_budget(row['budget_samples'])} samples' FLOPs no question ran under both."
    verdict = (
        f"significant at α = 0.05 ({row['vs_baseline_test']}, p = {row['vs_baseline_p_value']:.2g})"
        if row["vs_baseline_significant"]
        else f"not significant at α = 0.05 ({row['vs_baseline_test']}, p = {row['vs_baseline_p_value']:.2g})"
    )
    more = row["vs_baseline_more_questions"]
    if not row["vs_baseline_significant"]:
        if more is None or (isinstance(more, float) and not np.isfinite(more)):
            verdict += "; no difference observed, so no number of questions is predicted to separate them"
        elif more > 0:
            verdict += f"; at this effect roughly {int(more)} more questions would tell them apart"
    return (
        f"**Headline**: at {_budget(row['budget_samples'])} samples' FLOPs per question, {COMPUTE_OPTIMAL} against "
        f"`{baseline}` over all {n} questions: {_acc(row['held_out_accuracy'])} against "
        f"{_acc(row['baseline_accuracy'])}, a difference of {row['vs_baseline_difference']:+.2f} (95% paired "
        f"bootstrap interval {row['vs_baseline_ci_low']:+.2f} to {row['vs_baseline_ci_high']:+.2f}): {verdict}."
        + _band(row)
    )


NO_WIDTH = (
    "resampling the questions within each bin's halves moved nothing, which with this few questions per bin says little"
)


def _flat(lo: float, hi: float) -> bool:
    """A band that prints as one number: it says nothing about uncertainty, so the text says why instead."""
    return f"{lo:.2f}" == f"{hi:.2f}"


def _band(row: pd.Series) -> str:
    """The cross-validated curve's own band: questions resampled and the choice re-made on each resample."""
    if "cv_lo" not in row or not np.isfinite(row["cv_lo"]):
        return ""
    if _flat(row["cv_lo"], row["cv_hi"]):
        return f" The policy's bootstrap band has no width: {NO_WIDTH}."
    gap = (
        f"; its gap to the baseline {row['gap_lo']:+.2f} to {row['gap_hi']:+.2f}"
        if np.isfinite(row.get("gap_lo", np.nan))
        else ""
    )
    return (
        f" With the choice re-made on each bootstrap resample of the questions, the policy's accuracy spans "
        f"{row['cv_lo']:.2f} to {row['cv_hi']:.2f} (95%){gap}."
    )


# ---- the answer per budget: what the Compute-optimal page opens with -----------------------------------------------
@dataclass(frozen=True)
class BudgetAnswer:
    """One budget's answer over all questions: which configuration the cross-validated policy uses, how it scores
    held out, and whether its gap to the baseline is real. `sentence` is Markdown, one line."""

    budget_flops: float
    label: str  # the budget in FLOPs and in the samples the baseline draws there
    winner: str | None  # the most-chosen configuration over bins and folds (None: none covers every question)
    significant: bool
    sentence: str


def budget_labels(table: StrategyTable, baseline: str, sep: str = " ") -> list[str]:
    """Each budget in FLOPs and in what it buys the baseline: the whole samples per question it draws (mean over
    questions; the prompt is read once, so a budget buys more samples than its size in "samples' FLOPs"), or
    "pool exhausted at n" where the budget would buy more samples than the pool holds."""
    i = table.index(baseline)
    out = []
    for b, flops in enumerate(table.budgets):
        status = table.status[i, b]
        k = table.samples[i, b][status != UNAFFORDABLE]
        if not k.size:
            drawn = "not one sample affordable"
        elif (status == POOL_EXHAUSTED).any():
            drawn = f"pool exhausted at {int(np.nanmax(k))} samples"
        else:
            mean = float(np.nanmean(k))
            drawn = f"{mean:.3g} sample{'' if mean == 1 else 's'}"
            if k.size < status.size:
                drawn += f" on {k.size} of {status.size} questions"
        unit = "samples" if table.budget_unit == "samples" else "FLOPs"
        out.append(f"{flops:.3g} {unit}{sep}({drawn})")
    return out


def policy_choices(result: ComputeOptimalResult, b: int) -> list[tuple[str, int]]:
    """(configuration, times picked) at budget index `b` over every bin and selection fold, most-picked first
    (ties in the configurations' order): the cross-validated policy's choice over all questions."""
    picks = np.concatenate([result.chosen_names(0)[:, b], result.chosen_names(1)[:, b]])
    counts: dict[str, int] = {}
    for name in picks:
        if name:
            counts[name] = counts.get(name, 0) + 1
    order = {n: j for j, n in enumerate(result.configurations)}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], 0)))


def _p(value: float) -> str:
    return "p = —" if value is None or not np.isfinite(value) else f"p = {value:.2g}"


def budget_answers(study: ComputeOptimalStudy, report: pd.DataFrame | None = None) -> list[BudgetAnswer]:
    """One answer per budget, smallest first, from `study.report()`'s rows over all questions: the policy's
    most-picked configuration (and the others it picks in some bin or fold; where no one is picked most, each
    bin's pick), its held-out accuracy with the
    bootstrap band (`cv_lo`/`cv_hi`), its gap to the baseline with the paired interval and test
    (`vs_baseline_*`) and the band with the choice re-made (`gap_lo`/`gap_hi`), and the verdict at α = 0.05."""
    report = study.report() if report is None else report
    r, t = study.result, study.table
    baseline = r.baseline
    labels = budget_labels(t, baseline)
    whole = report[report["bin"] == "all"].sort_values("budget_flops").reset_index(drop=True)
    picks_total = 2 * len(r.levels)
    out = []
    for b, row in whole.iterrows():
        label = labels[b]
        picks = policy_choices(r, b)
        head = f"**At {label}**: "
        if not picks or not np.isfinite(row["held_out_accuracy"]):
            out.append(
                BudgetAnswer(
                    float(row["budget_flops"]),
                    label,
                    None,
                    False,
                    head + "no configuration covers every question of a bin here, so the policy has no held-out "
                    "accuracy.",
                )
            )
            continue
        winner: str | None = picks[0][0]
        n = picks[0][1]
        if n == picks_total:
            chosen = f"`{winner}` in every bin and fold"
        elif len(picks) > 1 and picks[1][1] == n:  # no most-picked one: the choice is the bins'
            winner = None
            chosen = "no single configuration; per difficulty bin (fold 0 / fold 1 where they differ): " + "; ".join(
                f"bin {int(lv)} " + (f"`{f0}`" if f0 == f1 else f"`{f0 or '—'}` / `{f1 or '—'}`")
                for lv, f0, f1 in zip(r.levels, r.chosen_names(0)[:, b], r.chosen_names(1)[:, b])
            )
        else:
            others = ", ".join(f"`{name}` {k}" for name, k in picks[1:])
            chosen = f"`{winner}` in {n} of {picks_total} bin-and-fold picks" + (f" (also {others})" if others else "")
        band = ""
        if np.isfinite(row.get("cv_lo", np.nan)):
            band = (
                f" (no 95% band: {NO_WIDTH})"
                if _flat(row["cv_lo"], row["cv_hi"])
                else f" (95% band {row['cv_lo']:.2f} to {row['cv_hi']:.2f})"
            )
        significant = bool(row["vs_baseline_significant"])
        if row["vs_baseline_questions_paired"] == 0:
            gap = f"no question ran under both it and `{baseline}`"
            significant = False
        else:
            paired = int(row["vs_baseline_questions_paired"])
            on = (
                ""
                if paired == int(row["questions"])
                else f" on the {paired} of {int(row['questions'])} questions both ran"
            )
            gap = (
                f"{row['vs_baseline_difference']:+.2f} against `{baseline}` ({_acc(row['baseline_accuracy'])}){on}, "
                f"95% paired interval {row['vs_baseline_ci_low']:+.2f} to {row['vs_baseline_ci_high']:+.2f}, "
                f"{_p(row['vs_baseline_p_value'])}"
            )
            if np.isfinite(row.get("gap_lo", np.nan)) and not _flat(row["gap_lo"], row["gap_hi"]):
                gap += f"; with the choice re-made per resample {row['gap_lo']:+.2f} to {row['gap_hi']:+.2f}"
        verdict = "**significant**" if significant else "**not significant**"
        sentence = (
            f"{head}the policy picks {chosen}; held-out accuracy {_acc(row['held_out_accuracy'])}{band}, "
            f"{gap}: {verdict} at α = 0.05."
        )
        out.append(BudgetAnswer(float(row["budget_flops"]), label, winner, significant, sentence))
    return out


def efficiency_reading(report: pd.DataFrame, baseline: str) -> tuple[str, str]:
    """(value, why) of the best efficiency over all questions (FLOPs the baseline needs / FLOPs the policy needs
    for the same accuracy, Snell et al. 2024): the largest finite ratio and its budget, or "—" with the reason no
    budget has one."""
    whole = report[report["bin"] == "all"].sort_values("budget_flops")
    finite = whole[np.isfinite(whole["efficiency"].astype(float))]
    if len(finite):
        best = finite.loc[finite["efficiency"].astype(float).idxmax()]
        bound = bool(best["efficiency_is_lower_bound"])
        return (
            f"{'≥ ' if bound else ''}{best['efficiency']:.2f}×",
            f"at {best['budget_flops']:.3g} FLOPs"
            + ("; a lower bound: the policy already reaches that accuracy at the smallest budget" if bound else ""),
        )
    if not np.isfinite(whole["baseline_accuracy"].astype(float)).any():
        return "—", f"`{baseline}` does not cover every question at any budget: no accuracy to match"
    if not (whole["baseline_accuracy"].astype(float) > 0).any():
        return "—", f"`{baseline}` scores 0 at every budget: no accuracy to match"
    return "—", (
        f"the cross-validated policy never reaches `{baseline}`'s accuracy within the measured budgets, so no "
        "budget of its matches one of the baseline's (it is below the baseline held out)"
    )


def study_markdown(opened: OpenedStudy, record: StudyRecord) -> str:
    """The marked section's body: what was run, its data quality, the headline, the choice per bin and budget,
    and every configuration's accuracy over all questions."""
    study = opened.study
    table, report = study.table, study.report()
    baseline = study.result.baseline
    kinds = pd.Series(table.kind).value_counts()
    sizes = sorted(set(study.bin_sizes.values()))
    bins = f"{len(study.bin_sizes)} {study.bins.kind} bins of {'–'.join(str(s) for s in sizes)} questions"
    knobs = []
    if record.samples_per_question is not None:
        knobs.append(f"{record.samples_per_question} samples each")
    if record.max_tokens is not None:
        knobs.append(f"max_tokens {record.max_tokens}")
    wall = (
        f"; {record.wall_s / 60:.1f} min from the first run's start to the last one's finish" if record.wall_s else ""
    )
    scored = f", scored by `{study.verifier}`" if study.verifier else ""
    lines = [
        f"**Study** `{', '.join(record.names)}` on {study.model} ({', '.join(record.engines)}): "
        f"{len(table.question_ids)} questions ({bins}), {', '.join(knobs)}{scored}; "
        f"{int(kinds.get('pool', 0))} pool rules and {int(kinds.get('search', 0))} search configurations at "
        f"{', '.join(_budget(s) for s in table.budget_samples)} samples' FLOPs per question{wall}.",
        "",
    ]
    if not record.quality.table.empty:
        summary = record.quality.summary().removeprefix("data quality: ")
        lines += [f"**Data quality** of the pool: {summary}.", ""]
        for warning in record.quality.warnings:
            lines += ["> " + line for line in warning.splitlines()] + [""]
    lines += [headline(report, baseline), ""]
    lines += [
        f"| bin (questions) | budget (samples' FLOPs) | chosen (fold 0 / fold 1) | held-out accuracy | `{baseline}` "
        f"| efficiency | difference [95% CI], p |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in report.iterrows():
        lines.append(
            f"| {row['bin']} ({int(row['questions'])}) | {_budget(row['budget_samples'])} | {_chosen(row)} | "
            f"{_acc(row['held_out_accuracy'])} | {_acc(row['baseline_accuracy'])} | "
            f"{_efficiency(row['efficiency'], bool(row['efficiency_is_lower_bound']))} | {_difference(row)} |"
        )
    cells = table.cells()
    acc = cells.pivot_table(index="configuration", columns="budget_samples", values="accuracy", sort=False)
    covered = cells.pivot_table(index="configuration", columns="budget_samples", values="questions", sort=False)
    lines += [
        "",
        "Every configuration over all questions (accuracy; a cell covering fewer questions says how many):",
        "",
        "| configuration | " + " | ".join(f"{_budget(b)}" for b in acc.columns) + " |",
        "|---|" + "---|" * len(acc.columns),
    ]
    n_q = len(table.question_ids)
    for name in table.configurations:
        vals = []
        for b in acc.columns:
            a, c = acc.loc[name, b], int(covered.loc[name, b])
            vals.append(_acc(a) if c == n_q else ("—" if c == 0 else f"{_acc(a)} ({c}/{n_q})"))
        lines.append(f"| `{name}` | " + " | ".join(vals) + " |")
    for note in study.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def bench_output_markdown(path: Path, whole: bool = False) -> str:
    """A benchmark's figures from its stored output (the command's printed lines, kept under bench/results/): its
    `RESULT` lines (or, `whole`, every line: a per-budget table a benchmark prints), verbatim, in a code block."""
    if not path.is_file():
        raise SpecError("--bench-output", f"{path} is not a file", "a benchmark's stored output under bench/results/")
    lines = path.read_text().splitlines()
    if not any(line.startswith("RESULT ") for line in lines):
        lines = []
    elif not whole:
        lines = [line for line in lines if line.startswith("RESULT ")]
    if not lines:
        raise SpecError("--bench-output", f"{path} has no RESULT line", "a benchmark's complete stored output")
    return "```\n" + "\n".join(lines) + "\n```\n"


def refresh(text: str, render: Callable[[list[str]], str]) -> str:
    """`text` with every marked section re-rendered: `render` takes a marker's arguments and returns the body."""

    def one(m: re.Match) -> str:
        return f"<!-- ttc report {m['args']} -->\n{render(shlex.split(m['args']))}<!-- /ttc report -->"

    return MARKER.sub(one, text)


def marked_sections(text: str) -> list[tuple[list[str], str]]:
    """(arguments, body) of every marked section, in order."""
    return [(shlex.split(m["args"]), m["body"]) for m in MARKER.finditer(text)]


def resolve_store_argument(args: list[str], folder: Path) -> list[str]:
    """A marker's `--store` (and `--bench-output`, `--plan`) path is relative to the marked file's folder."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a in ("--store", "--bench-output", "--plan") and not Path(out[i + 1]).is_absolute():
            out[i + 1] = str(folder / out[i + 1])
    return out
