"""Forecasts of coverage beyond the pool, each with a bootstrap band over questions.

Power law (Large Language Monkeys, Brown et al. 2024): log(coverage) ≈ a · k^b. With a < 0 and b < 0,
coverage = exp(a·k^b) rises towards 1 as k grows, the shape repeated sampling shows across tasks and models.
The fit is least squares on log(coverage) over a log-spaced k grid, so every decade of k weighs the same;
the start comes from the straight line log(−log coverage) = log(−a) + b·log k.

Distributional (Schaeffer et al. 2025, arXiv 2502.17578): per-question pass@1 p ~ Beta(α, β), fitted by
maximum likelihood on the (n, c) counts; pass@k = 1 − E[(1 − p)^k] = 1 − B(α, β + k)/B(α, β).
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


# ---- the power law's bootstrap band ------------------------------------------------------------------------------
_B_GRID = np.linspace(-5.0, 3.0, 401)  # exponents searched before the golden-section refinement
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def _profile_sse(k: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residual sum of squares of y ≈ a·k^b at the best a for each b (rows of y, w; b of shape (R, G)): for a
    fixed exponent the model is linear in a, so a = Σ w·y·k^b / Σ w·k^2b."""
    kb = np.power(k[None, None, :], b[..., None])  # (R, G, K)
    sxy = np.einsum("rk,rgk->rg", w * y, kb)
    sxx = np.einsum("rk,rgk->rg", w, kb * kb)
    syy = (w * y * y).sum(axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):  # a row with no usable point: NaN, dropped by the caller
        a = sxy / sxx
    return syy - a * sxy, a


def fit_power_law_many(k, coverage, *, chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of `fit_power_law` for every row of `coverage` at once (no loop over rows in Python beyond chunks).

    The same least squares on log(coverage) over the points with coverage > 0, solved by profiling: a grid over
    the exponent b, then golden-section refinement around the best grid point. Rows with fewer than 3 such points
    give NaN."""
    k = np.asarray(k, dtype=np.float64).ravel()
    cov = np.atleast_2d(np.asarray(coverage, dtype=np.float64))
    a_out = np.full(len(cov), np.nan)
    b_out = np.full(len(cov), np.nan)
    step = _B_GRID[1] - _B_GRID[0]
    for start in range(0, len(cov), chunk):
        c = cov[start : start + chunk]
        use = c > 0
        w = use.astype(np.float64)
        y = np.where(use, np.log(np.where(use, c, 1.0)), 0.0)
        sse, _ = _profile_sse(k, y, w, np.broadcast_to(_B_GRID, (len(c), _B_GRID.size)))
        best = _B_GRID[np.argmin(sse, axis=1)]
        lo, hi = best - step, best + step
        for _ in range(40):  # golden section: the bracket shrinks to step · 0.618^40
            x1, x2 = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
            s, _ = _profile_sse(k, y, w, np.stack([x1, x2], axis=1))
            left = s[:, 0] < s[:, 1]
            hi = np.where(left, x2, hi)
            lo = np.where(left, lo, x1)
        b = (lo + hi) / 2.0
        _, a = _profile_sse(k, y, w, b[:, None])
        ok = use.sum(axis=1) >= 3
        a_out[start : start + len(c)] = np.where(ok, a[:, 0], np.nan)
        b_out[start : start + len(c)] = np.where(ok, b, np.nan)
    return a_out, b_out


def _percentile_band(pred: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    tail = (1.0 - confidence) / 2.0
    if np.isnan(pred).all():
        nan = np.full(pred.shape[1], np.nan)
        return nan, nan.copy()
    low, high = np.nanquantile(pred, [tail, 1.0 - tail], axis=0)
    return low, high


def power_law_band(
    per_question, k, k_eval, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap over questions of the power-law forecast at `k_eval`: resample the questions (rows
    of the (Q, K) per-question pass@k table at the fitted `k`), refit log(coverage) = a·k^b on each resample's
    mean curve, predict. The extrapolated part of the band is what a forecast's reader needs: how far another
    draw of questions from the same task would move it."""
    from backend.metrics.curve import bootstrap_counts

    per_q = np.asarray(per_question, dtype=np.float64)
    counts = bootstrap_counts(per_q.shape[0], n_boot, seed).astype(np.float64)
    a, b = fit_power_law_many(k, counts @ per_q / per_q.shape[0])
    k_eval = np.asarray(k_eval, dtype=np.float64)
    pred = np.exp(a[:, None] * np.power(k_eval[None, :], b[:, None]))
    return _percentile_band(pred, confidence)


# ---- the distributional forecast (Schaeffer et al. 2025) ---------------------------------------------------------
_LOG_BOUNDS = (np.log(1e-4), np.log(1e4))  # alpha and beta are searched in [1e-4, 1e4]


def beta_pass_at_k(alpha, beta, k) -> np.ndarray:
    """pass@k = 1 − E[(1 − p)^k] for per-question pass@1 p ~ Beta(alpha, beta): E[(1 − p)^k] = B(α, β + k)/B(α, β)
    (Schaeffer et al. 2025, "How Do Large Language Monkeys Get Their Power (Laws)?", arXiv 2502.17578: aggregate
    pass@k follows from the distribution of per-question pass@1, each question's failure falling as (1 − p)^k).
    Broadcasts; k may be fractional and far beyond any pool."""
    from scipy.special import betaln

    alpha, beta, k = (np.asarray(x, dtype=np.float64) for x in (alpha, beta, k))
    return -np.expm1(betaln(alpha, beta + k) - betaln(alpha, beta))


def beta_binomial_loglik(alpha, beta, n, c) -> float:
    """Σ_q log P(c_q of n_q | Beta(α, β)) with P(c | n) = C(n, c)·B(c + α, n − c + β)/B(α, β): the likelihood of the
    counts themselves, so a question with 0 of n correct weighs what it says (its pass@1 is small, not 0)."""
    from scipy.special import betaln, gammaln

    n, c = np.asarray(n, dtype=np.float64), np.asarray(c, dtype=np.float64)
    log_comb = gammaln(n + 1) - gammaln(c + 1) - gammaln(n - c + 1)
    return float(np.sum(log_comb + betaln(c + alpha, n - c + beta) - betaln(alpha, beta)))


def _check_counts(n, c) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n).ravel()
    c = np.asarray(c).ravel()
    if n.shape != c.shape:
        raise ValueError(f"n and c must have the same length, got {n.size} and {c.size}")
    if n.size < 2:
        raise ValueError(f"a beta fit needs at least 2 questions, got {n.size}")
    if np.any(n < 1) or np.any((c < 0) | (c > n)):
        raise ValueError("counts must satisfy n >= 1 and 0 <= c <= n for every question")
    return n.astype(np.float64), c.astype(np.float64)


def _loglik_rows(theta: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted beta-binomial log-likelihood (without the constant binomial coefficients) for R rows at once,
    θ = (log α, log β) of shape (R, 2), w (R, U) over U distinct (n, c) pairs."""
    from scipy.special import betaln

    al, be = np.exp(theta[:, :1]), np.exp(theta[:, 1:])
    return (w * (betaln(c + al, n - c + be) - betaln(al, be))).sum(axis=1)


def _grad_rows(theta: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradient of `_loglik_rows` in θ = (log α, log β), (R, 2): ∂/∂α = Σ w·[ψ(c+α) − ψ(n+α+β)] − W·[ψ(α) − ψ(α+β)]
    (likewise for β with n − c), times α (resp. β) for the log scale."""
    from scipy.special import psi

    al, be = np.exp(theta[:, :1]), np.exp(theta[:, 1:])  # (R, 1)
    tot = w.sum(axis=1)
    pn = psi(n + al + be)
    pab = psi(al + be)[:, 0]
    ga = (w * (psi(c + al) - pn)).sum(axis=1) - tot * (psi(al)[:, 0] - pab)
    gb = (w * (psi(n - c + be) - pn)).sum(axis=1) - tot * (psi(be)[:, 0] - pab)
    return np.stack([ga * al[:, 0], gb * be[:, 0]], axis=1)


def _grad_hess(theta: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray):
    """Log-likelihood (R,), gradient (R, 2) and Hessian (R, 2, 2) in θ for R weight rows at once; the Hessian by
    central differences of the analytic gradient (trigamma through scipy's zeta costs ten times digamma)."""
    ll = _loglik_rows(theta, n, c, w)
    g = _grad_rows(theta, n, c, w)
    eps = 1e-5
    h = np.empty((len(theta), 2, 2))
    for i in range(2):
        e = np.zeros(2)
        e[i] = eps
        h[:, :, i] = (_grad_rows(theta + e, n, c, w) - _grad_rows(theta - e, n, c, w)) / (2 * eps)
    h = (h + h.transpose(0, 2, 1)) / 2
    return ll, g, h


@dataclass(frozen=True)
class BetaFit:
    """Per-question pass@1 ~ Beta(alpha, beta), fitted by maximum likelihood on the (n, c) counts."""

    alpha: float
    beta: float
    loglik: float
    n_questions: int

    def predict(self, k) -> np.ndarray:
        """pass@k = 1 − B(α, β + k)/B(α, β) at any k."""
        return beta_pass_at_k(self.alpha, self.beta, k)


def fit_beta_binomial(n, c) -> BetaFit:
    """Maximum likelihood Beta(α, β) for per-question pass@1 from each question's n samples and c correct.

    Schaeffer et al. 2025 (arXiv 2502.17578) forecast pass@k by fitting a beta to per-question pass@1; fitting it
    to the counts (a beta-binomial likelihood) rather than to c/n keeps the unsolved questions — the heavy left
    tail that makes aggregate coverage a power law — instead of piling them at p = 0, where a beta has no mass."""
    from scipy.optimize import minimize

    n, c = _check_counts(n, c)
    pairs, mult = np.unique(np.stack([n, c], axis=1), axis=0, return_counts=True)
    pn, pc, w = pairs[:, 0][None, :], pairs[:, 1][None, :], mult[None, :].astype(np.float64)
    mean = float(np.clip((c / n).mean(), 0.02, 0.98))  # a start: mean pass@1, concentration 2
    start = np.log([2.0 * mean, 2.0 * (1.0 - mean)])

    def neg(theta):
        th = np.asarray(theta)[None, :]
        return -_loglik_rows(th, pn, pc, w)[0], -_grad_rows(th, pn, pc, w)[0]

    res = minimize(neg, start, jac=True, method="L-BFGS-B", bounds=[_LOG_BOUNDS, _LOG_BOUNDS])
    if not np.all(np.isfinite(res.x)):
        raise ValueError(f"the beta-binomial fit did not converge: {res.message}")
    alpha, beta = np.exp(res.x)
    return BetaFit(float(alpha), float(beta), beta_binomial_loglik(alpha, beta, n, c), int(n.size))


def fit_beta_binomial_many(n, c, weights, start: BetaFit | None = None, *, iterations: int = 60):
    """(alpha, beta) arrays: the maximum likelihood beta of `fit_beta_binomial` for every row of `weights` (R, Q)
    — how many times each question counts, e.g. a bootstrap resample's multiplicities — solved for all rows at
    once by damped Newton steps in (log α, log β) from `start` (the unweighted fit by default)."""
    n, c = _check_counts(n, c)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    pairs, inverse = np.unique(np.stack([n, c], axis=1), axis=0, return_inverse=True)
    onehot = np.zeros((n.size, len(pairs)))
    onehot[np.arange(n.size), inverse.ravel()] = 1.0
    w = weights @ onehot  # (R, U): weight of each distinct (n, c) pair
    pn, pc = pairs[:, 0][None, :], pairs[:, 1][None, :]
    start = start or fit_beta_binomial(n, c)
    theta = np.tile(np.log([start.alpha, start.beta]), (len(w), 1))
    lo, hi = _LOG_BOUNDS
    active = np.arange(len(w))  # rows still moving
    for _ in range(iterations):
        th, wa = theta[active], w[active]
        ll, g, h = _grad_hess(th, pn, pc, wa)
        # ascent direction: −H⁻¹g where H is negative definite, shifted to be so elsewhere (Levenberg)
        eig_max = (h[:, 0, 0] + h[:, 1, 1]) / 2 + np.sqrt(((h[:, 0, 0] - h[:, 1, 1]) / 2) ** 2 + h[:, 0, 1] ** 2)
        shift = np.maximum(0.0, eig_max + 1e-6 * (1.0 + np.abs(h).max(axis=(1, 2))))
        m = -h + shift[:, None, None] * np.eye(2)
        step = np.linalg.solve(m, g[..., None])[..., 0]
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        step = step * np.minimum(1.0, 1.0 / np.maximum(norm, 1e-300))  # at most 1 in log space per iteration
        t = np.ones(len(th))
        for _ in range(30):  # halve each row's step until its likelihood does not fall
            cand = np.clip(th + t[:, None] * step, lo, hi)
            worse = _loglik_rows(cand, pn, pc, wa) < ll - 1e-12 * np.abs(ll)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        new = np.clip(th + t[:, None] * step, lo, hi)
        theta[active] = new
        active = active[np.abs(new - th).max(axis=1) > 1e-9]
        if active.size == 0:
            break
    return np.exp(theta[:, 0]), np.exp(theta[:, 1])


def beta_forecast_band(
    n, c, k_eval, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0, start: BetaFit | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap over questions of the distributional forecast at `k_eval`: resample questions (the
    same multiplicities as the coverage band, `bootstrap_counts` with `seed`), refit the beta, predict."""
    from backend.metrics.curve import bootstrap_counts

    n_arr = np.asarray(n).ravel()
    counts = bootstrap_counts(n_arr.size, n_boot, seed)
    alpha, beta = fit_beta_binomial_many(n, c, counts, start)
    pred = beta_pass_at_k(alpha[:, None], beta[:, None], np.asarray(k_eval, dtype=np.float64)[None, :])
    return _percentile_band(pred, confidence)


EXTRAPOLATION_FACTOR = 10  # forecasts stop at this many times the pool unless asked further


def default_k_max(pool_size: int) -> int:
    """How far a forecast reaches by default: 10× the largest pool. Beyond a decade the band is mostly the
    model's assumption, not the data's."""
    return EXTRAPOLATION_FACTOR * max(1, int(pool_size))
