"""Metrics over stored sample pools (docs/ARCHITECTURE.md, "Metrics"). Every function is numpy or DuckDB over columns; each
docstring names its formula."""

from backend.metrics.budget import X_UNITS, flops_for_samples, samples_for_flops, x_axis
from backend.metrics.compute_optimal import (
    SNELL_R_VALUES,
    ComputeOptimalResult,
    accuracy_at_budget,
    accuracy_table,
    budget_to_reach,
    compute_optimal,
    flops_matched_comparison,
    fold_assignment,
)
from backend.metrics.cost import (
    HUMAN_EXPERT,
    Price,
    attempt_cost,
    cost_of_pass,
    cost_table,
    counterfactual_frontier,
    curve_cost_rows,
    frontier,
    model_gain,
)
from backend.metrics.coverage import comb_ratio, coverage_curve, k_grid, pass_at_k
from backend.metrics.curve import Curve
from backend.metrics.difficulty import DifficultyBins, curves_by_bin, oracle_bins, predicted_bins, quantile_levels
from backend.metrics.fit import PowerLawFit, fit_coverage_curve, fit_power_law
from backend.metrics.pools import Pool, list_verifiers, load_pool, pool_from_arrays
from backend.metrics.selection import (
    best_of_n_curve,
    majority_curve,
    prefix_vote,
    selection_curves,
    weighted_best_of_n_curve,
)
from backend.metrics.verifier_quality import VerifierQuality, verifier_quality, verifier_quality_table

__all__ = [
    "HUMAN_EXPERT",
    "SNELL_R_VALUES",
    "X_UNITS",
    "ComputeOptimalResult",
    "Curve",
    "DifficultyBins",
    "Pool",
    "PowerLawFit",
    "Price",
    "VerifierQuality",
    "accuracy_at_budget",
    "accuracy_table",
    "attempt_cost",
    "best_of_n_curve",
    "budget_to_reach",
    "comb_ratio",
    "compute_optimal",
    "cost_of_pass",
    "cost_table",
    "counterfactual_frontier",
    "coverage_curve",
    "curve_cost_rows",
    "curves_by_bin",
    "fit_coverage_curve",
    "fit_power_law",
    "flops_for_samples",
    "flops_matched_comparison",
    "fold_assignment",
    "frontier",
    "k_grid",
    "list_verifiers",
    "load_pool",
    "majority_curve",
    "model_gain",
    "oracle_bins",
    "pass_at_k",
    "pool_from_arrays",
    "predicted_bins",
    "prefix_vote",
    "quantile_levels",
    "samples_for_flops",
    "selection_curves",
    "verifier_quality",
    "verifier_quality_table",
    "weighted_best_of_n_curve",
    "x_axis",
]
