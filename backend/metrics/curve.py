"""The one shape every metric curve takes, and the bootstrap over questions that gives it a band.

Two different uncertainties are kept apart on purpose:
- `low`/`high`: a percentile bootstrap over questions — how much the mean would move on another draw of
  questions from the same task. This is the band a researcher compares strategies with.
- `mc_low`/`mc_high`: the Monte Carlo error of a curve estimated by resampling k-subsets (equal to `mean`
  where the curve is computed exactly). It says how far the estimate may sit from the exact expectation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Curve:
    """A metric as a function of k (samples per question), averaged over the selected questions."""

    name: str
    k: np.ndarray  # (K,) samples per question
    mean: np.ndarray  # (K,) mean over questions
    low: np.ndarray  # (K,) bootstrap-over-questions band
    high: np.ndarray
    per_question: np.ndarray  # (Q, K) the per-question values the mean averages
    question_ids: np.ndarray  # (Q,)
    exact: bool  # True: computed in closed form; False: resampled k-subsets
    mc_low: np.ndarray  # (K,) resampling band (== mean when exact)
    mc_high: np.ndarray
    confidence: float = 0.95
    meta: dict = field(default_factory=dict)
    draw_values: np.ndarray | None = None  # (D, Q, K) per-draw values of a resampled curve

    def restrict(self, questions, *, n_boot: int = 1000, seed: int = 0) -> Curve:
        """The same curve over a subset of its questions (e.g. one difficulty bin), without recomputing
        the per-question values: mean and both bands are recomputed from the kept rows."""
        mask = check_questions_mask(questions, len(self.question_ids))
        per_q = self.per_question[mask]
        mean, low, high = bootstrap_band(per_q, n_boot=n_boot, confidence=self.confidence, seed=seed)
        draws = None if self.draw_values is None else self.draw_values[:, mask]
        mc_low, mc_high = (mean, mean) if draws is None else mc_band(draws, self.confidence)
        return Curve(
            self.name,
            self.k,
            mean,
            low,
            high,
            per_q,
            self.question_ids[mask],
            self.exact,
            mc_low,
            mc_high,
            self.confidence,
            dict(self.meta),
            draws,
        )

    def at(self, k: int) -> float:
        """Mean value at one k of the grid (ValueError if k is not on it)."""
        hits = np.flatnonzero(self.k == k)
        if hits.size == 0:
            raise ValueError(f"k={k} is not on this curve's grid; allowed: {self.k.tolist()}")
        return float(self.mean[hits[0]])


def bootstrap_counts(n_questions: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_questions) multiplicities of a with-replacement resample of the questions.

    Drawn as counts so a bootstrap of any per-question table is one matrix product, not a loop."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_questions, size=(n_boot, n_questions))
    offsets = (np.arange(n_boot) * n_questions)[:, None]
    return np.bincount((picks + offsets).ravel(), minlength=n_boot * n_questions).reshape(n_boot, n_questions)


def bootstrap_band(per_question: np.ndarray, *, n_boot: int, confidence: float, seed: int):
    """Percentile bootstrap over questions of the column means of a (Q, K) table: mean_b = counts_b · P / Q."""
    _check_confidence(confidence)
    n_q = per_question.shape[0]
    mean = per_question.mean(axis=0)
    if n_boot <= 0 or n_q < 2:
        return mean, mean.copy(), mean.copy()
    counts = bootstrap_counts(n_q, n_boot, seed).astype(np.float64)
    boot_means = counts @ per_question / n_q  # (B, K)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot_means, [tail, 1.0 - tail], axis=0)
    return mean, low, high


def mc_band(draw_values: np.ndarray, confidence: float):
    """Student-t band of the mean over draws of the per-draw question means: the Monte Carlo error of a
    resampled curve (draws are independent, so their spread is an honest error estimate)."""
    from scipy import stats

    per_draw = draw_values.mean(axis=1)  # (D, K)
    d = per_draw.shape[0]
    center = per_draw.mean(axis=0)
    half = stats.t.ppf(0.5 + confidence / 2.0, d - 1) * per_draw.std(axis=0, ddof=1) / np.sqrt(d)
    return center - half, center + half


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def check_questions_mask(questions, n_questions: int) -> np.ndarray:
    """Normalise an optional question selection (bool mask or index array) to a bool mask."""
    if questions is None:
        return np.ones(n_questions, dtype=bool)
    sel = np.asarray(questions)
    if sel.dtype == bool:
        if sel.shape != (n_questions,):
            raise ValueError(f"questions mask has shape {sel.shape}; expected ({n_questions},) booleans")
        mask = sel
    else:
        if sel.size and (sel.min() < 0 or sel.max() >= n_questions):
            raise ValueError(f"questions indices must lie in [0, {n_questions}), got {sel.min()}..{sel.max()}")
        mask = np.zeros(n_questions, dtype=bool)
        mask[sel.astype(np.int64)] = True
    if not mask.any():
        raise ValueError("questions selects no question; select at least one")
    return mask
