"""Metrics over stored sample pools (DESIGN.md §5). Every function is numpy or DuckDB over columns."""

from backend.metrics.coverage import comb_ratio, coverage_curve, k_grid, pass_at_k
from backend.metrics.curve import Curve
from backend.metrics.pools import Pool, list_verifiers, load_pool, pool_from_arrays
from backend.metrics.selection import (
    best_of_n_curve,
    majority_curve,
    selection_curves,
    weighted_best_of_n_curve,
)

__all__ = [
    "Curve",
    "Pool",
    "best_of_n_curve",
    "comb_ratio",
    "coverage_curve",
    "k_grid",
    "list_verifiers",
    "load_pool",
    "majority_curve",
    "pass_at_k",
    "pool_from_arrays",
    "selection_curves",
    "weighted_best_of_n_curve",
]
