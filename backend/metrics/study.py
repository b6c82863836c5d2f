"""The compute-optimal study of one model's runs, from the store to the answer: which configuration to use per
difficulty bin at each FLOP budget, how much better that is than best-of-N, and how the strategies compare.

One function builds it (`compute_optimal_study`); the dashboard's Compute-optimal page draws it and
`ttc compute-optimal` prints `report()`, so both give the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd

from backend.metrics.axes import run_axes
from backend.metrics.compute_optimal import BAND_BOOT, ComputeOptimalResult, CvBand, compute_optimal, cv_band
from backend.metrics.difficulty import DifficultyBins, oracle_bins, predicted_bins, supported_bins
from backend.metrics.paired import compare_at_budgets, difference_row, paired_difference
from backend.metrics.pools import Pool, list_verifiers, load_pool
from backend.metrics.strategy_table import (
    StrategyTable,
    load_searches,
    old_rule_scores,
    strategy_table,
    verifier_flops_per_question,
)

BIN_KINDS = ("oracle", "predicted")


def held_out_text(bins_kind: str) -> str:
    """One sentence per bin kind on what is held out. The bins are computed before the split, from every question:
    oracle bins from each question's pass@1 over all its samples (the scoring half included, as Snell et al. bin
    with ground truth); predicted bins from each question's mean verifier score over all its samples, scores the
    pool's scoring computed anyway (best-of-N reads the same ones), which no budget on the axis is charged for."""
    held = (
        "Held out: only the choice of configuration (picked on one half of each bin's questions, scored on the "
        "other half, then the halves swap). "
    )
    if bins_kind.startswith("predicted"):
        return held + (
            "Not held out: the bins, from every question's mean verifier score over all its pool's samples "
            "(no ground truth); those verifier passes are the pool's own scoring, which best-of-N also reads, "
            "and no budget is charged for them, so below the pool's size the binning has seen more passes than "
            "the budget pays for."
        )
    return held + (
        "Not held out: the bins, from every question's pass@1 over all its pool's samples, the scoring half "
        "included (as Snell et al. do): oracle bins use the ground truth a deployed system would not have."
    )


COMPUTE_OPTIMAL = "compute-optimal (cross-validated)"
"""The policy as `compare` names it: per question, the configuration the other fold of its bin picked."""
AUTO = "auto"  # verifier=AUTO: the first verifier that scored the pool (None: no verifier, majority is the baseline)


@dataclass(frozen=True)
class ComputeOptimalStudy:
    model: str
    verifier: str | None
    table: StrategyTable
    bins: DifficultyBins
    result: ComputeOptimalResult
    notes: tuple[str, ...]
    band: CvBand | None = None  # bootstrap band of the cross-validated curve and its gap (None: not computed)

    @property
    def bin_sizes(self) -> dict[int, int]:
        return {int(lv): int(m.sum()) for lv, m in self.bins.masks().items()}

    @property
    def held_out(self) -> str:
        """What the 2-fold cross-validation holds out, and what it does not (the page and the CLI say this)."""
        return held_out_text(self.bins.kind)

    def report(self) -> pd.DataFrame:
        """Per bin (and 'all') × budget: the configuration chosen on each selection fold, its held-out accuracy,
        the baseline's accuracy and the efficiency ratio (FLOPs the baseline needs / FLOPs compute-optimal needs
        for the same accuracy; `efficiency_is_lower_bound` where compute-optimal matched it at the smallest budget),
        and whether compute-optimal's difference from the baseline is real: paired over the bin's questions, the
        difference's bootstrap interval, the paired test's p-value, and roughly how many more questions would tell
        them apart (backend/metrics/paired.py). `gap` is the held-out accuracy minus the baseline's; `cv_lo`/`cv_hi`
        and `gap_lo`/`gap_hi` their bootstrap band over questions with the choice re-made on every resample
        (`compute_optimal.cv_band`: unlike `vs_baseline_ci_*`, which holds the chosen configurations fixed, it
        carries the selection's variability; NaN when the study was built without a band)."""
        r, t, band = self.result, self.table, self.band
        n_l, n_b = len(r.levels), len(r.budgets)
        # (L + 1, B) each: the bins' rows, then the row over all questions
        cv_lo, cv_hi, gap_lo, gap_hi = (
            np.vstack([getattr(band, f"{what}_by_bin_{end}"), getattr(band, f"{what}_{end}")[None]])
            if band
            else np.full((n_l + 1, n_b), np.nan)
            for what, end in (("accuracy", "low"), ("accuracy", "high"), ("gap", "low"), ("gap", "high"))
        )
        base = t.accuracy[t.index(r.baseline)]  # (B, Q)
        groups: list[tuple[str, np.ndarray, int | None]] = [
            (str(int(lv)), self.bins.level == lv, i) for i, lv in enumerate(r.levels)
        ]
        groups.append(("all", np.ones(len(t.question_ids), dtype=bool), None))
        rows = []
        for label, mask, i in groups:
            for b in range(len(r.budgets)):
                paired = paired_difference(r.held_out_by_question[b][mask], base[b][mask])
                whole = i is None
                row = n_l if i is None else i
                held = r.accuracy[b] if whole else r.accuracy_by_bin[i, b]
                base_acc = r.baseline_accuracy[b] if whole else r.baseline_accuracy_by_bin[i, b]
                rows.append(
                    dict(
                        bin=label,
                        questions=int(mask.sum()),
                        budget_flops=r.budgets[b],
                        budget_samples=t.budget_samples[b],
                        chosen_fold0=None if whole else r.chosen_names(0)[i, b] or None,
                        chosen_fold1=None if whole else r.chosen_names(1)[i, b] or None,
                        held_out_accuracy=held,
                        baseline=r.baseline,
                        baseline_accuracy=base_acc,
                        efficiency=r.efficiency[b] if whole else r.efficiency_by_bin[i, b],
                        efficiency_is_lower_bound=bool(
                            r.efficiency_is_lower_bound[b] if whole else r.efficiency_by_bin_is_lower_bound[i, b]
                        ),
                        **{f"vs_baseline_{k}": v for k, v in difference_row(paired).items()},
                        cv_lo=cv_lo[row, b],
                        cv_hi=cv_hi[row, b],
                        gap=held - base_acc,
                        gap_lo=gap_lo[row, b],
                        gap_hi=gap_hi[row, b],
                    )
                )
        return pd.DataFrame(rows)

    def compared(self) -> list[str]:
        """What `compare` takes: the cross-validated compute-optimal policy, then every configuration."""
        return [COMPUTE_OPTIMAL, *self.table.configurations]

    def compare(self, a: str, b: str, bin: str = "all", seed: int = 0) -> pd.DataFrame:
        """`a` against `b` (names from `compared()`) at every budget, paired over the questions of `bin` ('all' or a
        level) both ran (backend/metrics/paired.py)."""
        allowed = [str(int(lv)) for lv in self.result.levels] + ["all"]
        if bin not in allowed:
            raise ValueError(f"bin {bin!r} is not a bin of this study; allowed: {', '.join(allowed)}")
        mask = None if bin == "all" else self.bins.level == int(bin)
        return compare_at_budgets(
            a,
            self._per_question(a),
            b,
            self._per_question(b),
            self.table.budgets,
            self.table.budget_samples,
            mask,
            seed,
        )

    def _per_question(self, name: str) -> np.ndarray:
        if name == COMPUTE_OPTIMAL:
            return self.result.held_out_by_question
        if name not in self.table.configurations:
            raise ValueError(f"{name!r} is not compared here; allowed: {', '.join(self.compared())}")
        return self.table.accuracy[self.table.index(name)]

    def cells_by_bin(self) -> pd.DataFrame:
        """Every configuration's accuracy at every budget within each bin (Snell Fig. 3-right / 5), with how many of
        the bin's questions each cell covers, plus the same over all questions (bin 'all')."""
        frames = [self.table.cells(m).assign(bin=str(lv)) for lv, m in self.bins.masks().items()]
        frames.append(self.table.cells().assign(bin="all"))
        return pd.concat(frames, ignore_index=True)

    def ratio_sweep(self, cells: pd.DataFrame | None = None) -> pd.DataFrame:
        """The sequential:parallel sweep points per bin × budget, with `best` marking the best ratio of each
        (bin, strategy family, budget) among the points that cover every question of the bin (Snell Fig. 7-right).
        `cells`: `cells_by_bin()` where the caller already has it."""
        cells = self.cells_by_bin() if cells is None else cells
        sweep = cells[cells["ratio"] != ""].copy()
        if sweep.empty:
            return sweep.assign(best=pd.Series(dtype=bool))
        full = sweep["questions"] == sweep["of_questions"]
        score = sweep["accuracy"].where(full, -np.inf)
        top = score.groupby([sweep["bin"], sweep["strategy"], sweep["budget_flops"]]).transform("max")
        sweep["best"] = full & (score == top) & np.isfinite(top)
        return sweep.reset_index(drop=True)


@dataclass(frozen=True)
class StudyInputs:
    """Everything of a study that does not depend on the bin kind: the accuracy table and both kinds of bins
    (small and picklable, so a page can cache it and switch bin kinds without reloading the pool)."""

    model: str
    verifier: str | None
    table: StrategyTable
    bins: dict[str, DifficultyBins]
    notes: tuple[str, ...]
    bins_unavailable: tuple[tuple[str, str], ...] = ()  # (kind, why) for a kind that cannot be formed here


def _one_sample(con, runs: list[str], model: str, pool) -> float | None:
    """The "≈ x samples" unit: backend.pricing's "1 sample" of the pool's questions at the runs' max_tokens, on the
    model's architecture (None when the model file or the runs' specs are not at hand)."""
    from backend.errors import TtcError
    from backend.models.registry import resolve_model
    from backend.pricing import pool_one_sample_flops, runs_max_tokens

    max_tokens = runs_max_tokens(con, runs)
    if max_tokens is None:
        return None
    try:
        arch = resolve_model(model).arch
    except (TtcError, OSError, ValueError):
        return None
    return None if arch is None else pool_one_sample_flops(pool, arch, max_tokens)


def samples_priced(pool: Pool) -> Pool:
    """The pool with every sample costing one and its prompt nothing: a budget axis in samples per question, for
    runs without FLOPs (backend/metrics/axes.py)."""
    return replace(
        pool,
        prefill_flops=np.zeros_like(pool.prefill_flops),
        decode_flops=np.ones_like(pool.decode_flops),
        flops=np.ones_like(pool.flops),
    )


def study_inputs(
    con: duckdb.DuckDBPyConnection,
    run_ids: str | Sequence[str],
    model: str,
    *,
    dataset: str | None = None,
    verifier: str | None = AUTO,
    n_bins: int = 5,
    draws: int = 32,
    seed: int = 0,
    budgets=None,
    pool: Pool | None = None,
    pool_rules: bool = True,
    confidence_rules: bool = True,
) -> StudyInputs:
    """Load the model's pool and searches, build the accuracy table on the FLOPs axis and bin the questions
    both ways (compute_optimal_study). `pool`: the same selection's sampling pool (strategy 'sample') already
    loaded, e.g. by a page's cache, used instead of reading it again; verifiers other than `verifier` set aside.
    pool_rules=False: a table of the searches alone (`strategy_table`), for a page that draws only those;
    confidence_rules=False: without the confidence-aware rules."""
    runs = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    known = list_verifiers(con, runs, model)
    if verifier == AUTO:
        verifier = known[0] if known else None
    elif verifier is not None and verifier not in known:
        raise ValueError(
            f"verifier {verifier!r} scored no sample of {model} in these runs; allowed: {', '.join(known) or 'none (run a verifier first)'}"
        )
    if pool is None:
        pool = load_pool(con, runs, model, dataset=dataset, strategy="sample", verifiers=[verifier] if verifier else [])
    else:
        pool = replace(pool, scores={v: sc for v, sc in pool.scores.items() if v == verifier})
    notes: list[str] = []
    axes = run_axes(con, runs, model)
    if axes.can("flops"):
        # what best-of-N pays per sample for its verifier: read by the pool rules alone
        vflops = verifier_flops_per_question(con, runs, model, verifier, pool) if verifier and pool_rules else None
        one, unit = _one_sample(con, runs, model, pool), "flops"
    else:  # budgets in samples: every sample costs one, the verifier's pass nothing
        notes.append(f"{axes.why('flops')}; budgets are in samples per question")
        pool = samples_priced(pool)
        vflops, one, unit = None, 1.0, "samples"
    table = strategy_table(
        pool,
        load_searches(con, runs, model),
        verifier=verifier,
        verifier_flops=vflops,
        budgets=budgets,
        draws=draws,
        seed=seed,
        one_sample_flops=one,
        budget_unit=unit,
        pool_rules=pool_rules,
        confidence_rules=confidence_rules,
    )
    notes.extend(table.notes)
    stale = old_rule_scores(con, runs, model, verifier) if verifier and pool_rules else 0
    if stale:
        notes.append(
            f"{stale} {verifier} score(s) were charged by the engine's cache report (written before shard layout 9) "
            "and cannot be re-priced: best-of-N's verifier cost is the old rule's there; delete the run's scores "
            "folder and run its spec again to re-score them"
        )
    usable = supported_bins(pool.n_questions, n_bins)
    if usable < n_bins:
        notes.append(
            f"{pool.n_questions} questions support {usable} difficulty bin(s) of at least 2 questions, not {n_bins}; showing {usable}"
        )
    bins = {"oracle": oracle_bins(pool, usable)}
    unavailable = []
    if verifier is None:
        unavailable.append(("predicted", "predicted difficulty needs a verifier's scores"))
    else:
        try:
            bins["predicted"] = predicted_bins(pool, verifier, usable)
        except ValueError as e:  # the verifier left questions unscored: oracle bins still stand
            unavailable.append(("predicted", str(e)))
    return StudyInputs(model, verifier, table, bins, tuple(notes), tuple(unavailable))


def study_from_inputs(
    inputs: StudyInputs, *, bins: str = "oracle", seed: int = 0, band_boot: int = BAND_BOOT
) -> ComputeOptimalStudy:
    """The cross-validated compute-optimal choice for one bin kind (milliseconds), with its bootstrap band over
    `band_boot` resamples of the questions (0: no band)."""
    if bins not in BIN_KINDS:
        raise ValueError(f"bins {bins!r} is unknown; allowed: {', '.join(BIN_KINDS)}")
    notes = list(inputs.notes)
    if bins not in inputs.bins:
        notes.append(f"{dict(inputs.bins_unavailable)[bins]}; using oracle bins")
        bins = "oracle"
    b, table = inputs.bins[bins], inputs.table
    baseline = f"best_of_n[{inputs.verifier}]" if inputs.verifier else "majority"
    result = compute_optimal(table.accuracy, table.budgets, table.configurations, b.level, baseline=baseline, seed=seed)
    band = (
        cv_band(
            table.accuracy, table.budgets, table.configurations, b.level, baseline=baseline, seed=seed, n_boot=band_boot
        )
        if band_boot > 0
        else None
    )
    return ComputeOptimalStudy(inputs.model, inputs.verifier, table, b, result, tuple(notes), band)


def compute_optimal_study(
    con: duckdb.DuckDBPyConnection,
    run_ids: str | Sequence[str],
    model: str,
    *,
    dataset: str | None = None,
    verifier: str | None = AUTO,
    bins: str = "oracle",
    n_bins: int = 5,
    draws: int = 32,
    seed: int = 0,
    budgets=None,
    band_boot: int = BAND_BOOT,
) -> ComputeOptimalStudy:
    """Load the model's pool and searches, build the accuracy table on the FLOPs axis, bin the questions and
    cross-validate the compute-optimal choice per bin (backend.metrics.compute_optimal).

    verifier: the pool's scores that best-of-N uses (and predicted bins need); AUTO = the first that scored the
    pool; None (or no verifier in the store) = none, majority vote is the baseline. With fewer questions than `n_bins` × 2 the bins fall back to the most
    the questions support, and a note says so. band_boot: resamples of the curve's bootstrap band (0: none)."""
    if bins not in BIN_KINDS:
        raise ValueError(f"bins {bins!r} is unknown; allowed: {', '.join(BIN_KINDS)}")
    inputs = study_inputs(
        con, run_ids, model, dataset=dataset, verifier=verifier, n_bins=n_bins, draws=draws, seed=seed, budgets=budgets
    )
    return study_from_inputs(inputs, bins=bins, seed=seed, band_boot=band_boot)
