"""Power-law fit of coverage (Large Language Monkeys, Brown et al. 2024): log(coverage) ≈ a · k^b.

With a < 0 and b < 0, coverage = exp(a·k^b) rises towards 1 as k grows, the shape repeated sampling shows
across tasks and models; the fit lets the dashboard extrapolate beyond the stored pool (drawn dashed).
The fit is least squares on log(coverage) over a log-spaced k grid, so every decade of k weighs the same;
the start comes from the straight line log(−log coverage) = log(−a) + b·log k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from backend.metrics.curve import Curve


def _model(k, a, b):
    return a * np.power(k, b)


@dataclass(frozen=True)
class PowerLawFit:
    """coverage(k) ≈ exp(a · k^b), fitted on (k, coverage) points."""

    a: float
    b: float
    k: np.ndarray  # the points fitted
    coverage: np.ndarray
    rmse: float  # root mean square error of coverage over the fitted (log-spaced) k
    max_abs_error: float

    def predict(self, k) -> np.ndarray:
        """exp(a · k^b) at any k (extrapolation beyond the pool included)."""
        return np.exp(_model(np.asarray(k, dtype=np.float64), self.a, self.b))

    def extrapolate(self, k_max: float, points: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(k, predicted coverage, is_extrapolated) on a log grid from 1 to k_max; the flag marks k beyond
        the largest fitted k, which the dashboard draws dashed."""
        if k_max < 1:
            raise ValueError(f"k_max must be >= 1, got {k_max}")
        ks = np.geomspace(1.0, float(k_max), points)
        return ks, self.predict(ks), ks > self.k.max()


def fit_power_law(k, coverage) -> PowerLawFit:
    """Fit log(coverage) = a · k^b by least squares (scipy curve_fit). Needs >= 3 points with 0 < coverage;
    points at coverage 1 carry log 0 and are kept (they pull a·k^b towards 0)."""
    k = np.asarray(k, dtype=np.float64).ravel()
    cov = np.asarray(coverage, dtype=np.float64).ravel()
    if k.shape != cov.shape:
        raise ValueError(f"k and coverage must have the same length, got {k.size} and {cov.size}")
    if np.any(k < 1):
        raise ValueError("k must be >= 1 everywhere")
    if np.any((cov < 0) | (cov > 1) | ~np.isfinite(cov)):
        raise ValueError("coverage must lie in [0, 1]")
    use = cov > 0
    if use.sum() < 3:
        raise ValueError(f"a power-law fit needs at least 3 points with coverage > 0, got {int(use.sum())}")
    kf, lc = k[use], np.log(cov[use])
    inner = lc < 0
    if inner.sum() >= 2:  # straight line in log(-log c) vs log k for the start
        slope, icept = np.polyfit(np.log(kf[inner]), np.log(-lc[inner]), 1)
        p0 = (-float(np.exp(icept)), float(slope))
    else:
        p0 = (-1.0, -0.5)
    try:
        (a, b), _ = curve_fit(_model, kf, lc, p0=p0, maxfev=20000)
    except RuntimeError as err:  # no convergence: report instead of a traceback
        raise ValueError(f"the power-law fit did not converge: {err}") from None
    resid = np.exp(_model(kf, a, b)) - cov[use]
    return PowerLawFit(
        float(a), float(b), kf, cov[use], float(np.sqrt(np.mean(resid**2))), float(np.max(np.abs(resid)))
    )


def fit_coverage_curve(curve: Curve) -> PowerLawFit:
    """`fit_power_law` on a coverage curve's (k, mean); use a log-spaced k grid (the default one is)."""
    return fit_power_law(curve.k, curve.mean)
