"""Question difficulty bins (Snell et al. 2024 §3): which strategy wins depends on how hard a question is.

- oracle: each question's pass@1 = c/n estimated from its pool, split into equal-size quantile bins;
- predicted: the mean verifier score over the pool, same split — needs no ground truth, so it is what a
  deployed system could use.
Level 1 is the easiest bin (highest pass@1 or score), as in the paper. Bins are equal-size by rank; tied
values are ordered by question position (the store's question order), so a split is deterministic.
Every curve function takes `questions=`, so any curve is available per bin (`curves_by_bin`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backend.metrics.curve import Curve
from backend.metrics.pools import Pool


@dataclass(frozen=True)
class DifficultyBins:
    kind: str  # "oracle" or "predicted[<verifier>]"
    level: np.ndarray  # (Q,) 1..n_bins, 1 = easiest
    value: np.ndarray  # (Q,) the binned statistic
    n_bins: int

    def mask(self, level: int) -> np.ndarray:
        if not 1 <= level <= self.n_bins:
            raise ValueError(f"level must be in 1..{self.n_bins}, got {level}")
        return self.level == level

    def masks(self) -> dict[int, np.ndarray]:
        return {lv: self.level == lv for lv in range(1, self.n_bins + 1)}


def quantile_levels(values, n_bins: int = 5) -> np.ndarray:
    """Equal-size rank bins: level = 1 + floor(rank · n_bins / Q), rank 0 = largest value (easiest)."""
    values = np.asarray(values, dtype=np.float64)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if values.ndim != 1 or values.size < n_bins:
        raise ValueError(f"need at least n_bins={n_bins} questions to bin, got {values.size}")
    if np.isnan(values).any():
        raise ValueError("cannot bin NaN values; a question has no usable samples or scores")
    order = np.argsort(-values, kind="stable")
    level = np.empty(values.size, dtype=np.int64)
    level[order] = np.arange(values.size) * n_bins // values.size + 1
    return level


def supported_bins(n_questions: int, n_bins: int, per_bin: int = 2) -> int:
    """The most equal-size bins, up to `n_bins`, in which every bin holds at least `per_bin` questions (2-fold
    cross-validation needs two). Bins are by rank, so ties in the binned value never make a bin smaller."""
    if n_questions < per_bin:
        raise ValueError(f"need at least {per_bin} questions to form a difficulty bin, got {n_questions}")
    return max(1, min(n_bins, n_questions // per_bin))


def oracle_bins(pool: Pool, n_bins: int = 5) -> DifficultyBins:
    """Oracle difficulty: pass@1 = c/n from each pool, in equal-size quantile bins."""
    p1 = pool.n_correct / np.maximum(pool.n, 1)
    return DifficultyBins("oracle", quantile_levels(p1, n_bins), p1, n_bins)


def predicted_bins(pool: Pool, verifier: str, n_bins: int = 5) -> DifficultyBins:
    """Predicted difficulty: mean verifier score over each pool (missing scores skipped), quantile bins —
    no ground truth used."""
    score = np.where(pool.valid, pool.score(verifier), np.nan)
    seen = (~np.isnan(score)).sum(axis=1)
    mean = np.divide(np.nansum(score, axis=1), seen, out=np.full(seen.shape, np.nan), where=seen > 0)
    if np.isnan(mean).any():
        missing = pool.question_ids[np.isnan(mean)][:3].tolist()
        raise ValueError(f"verifier {verifier!r} scored no sample of question(s) {missing}; cannot predict bins")
    return DifficultyBins(f"predicted[{verifier}]", quantile_levels(mean, n_bins), mean, n_bins)


def curves_by_bin(
    curve: Curve | Callable[..., Curve], pool: Pool | None, bins: DifficultyBins, *args, **kwargs
) -> dict[int, Curve]:
    """{level: curve over that bin's questions} for every level.

    Given a computed Curve (over the same questions as the bins), restricts it — no recomputation, the cheap
    path for a dashboard. Given a curve function, calls curve_fn(pool, *args, questions=mask, **kwargs)."""
    if isinstance(curve, Curve):
        if bins.level.shape != (len(curve.question_ids),):
            raise ValueError(f"bins cover {bins.level.size} questions but the curve has {len(curve.question_ids)}")
        return {lv: curve.restrict(m, **kwargs) for lv, m in bins.masks().items()}
    if pool is None or bins.level.shape != (pool.n_questions,):
        have = "no pool" if pool is None else f"a pool of {pool.n_questions}"
        raise ValueError(f"bins cover {bins.level.size} questions but got {have}")
    return {lv: curve(pool, *args, questions=m, **kwargs) for lv, m in bins.masks().items()}
