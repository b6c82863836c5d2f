"""Selection curves: accuracy of picking one answer out of k samples, as the expectation over random k-subsets
of each stored pool (never the first k samples, which would make the curve depend on storage order).

Rules, shared with the brute-force reference in the tests:
- best-of-N by score: the sample with the highest verifier score wins; a missing score ranks lowest; ties
  are broken uniformly at random (the expectation averages over the tied samples).
- majority vote: the most frequent normalised answer among the k samples wins; samples without an answer
  do not vote; ties between answers are broken uniformly at random (averaged); no answer at all scores 0.
- weighted best-of-N: each distinct answer gets the sum of its samples' verifier scores (missing = 0); the
  largest sum wins (ties within 1e-9 relative broken uniformly at random); no answer at all scores 0.
An answer's correctness is the fraction of its pool samples graded correct (1 or 0 when grading is
consistent, which it is when answers are graded by their normalised string).

Best-of-N has a closed form (order statistics, below). Majority and weighted votes have none that is cheap,
so they are estimated by resampling: each draw is one random permutation of the sample positions, and its
prefixes are uniformly random k-subsets for every k of the grid at once; vote counts for all k come from one
bincount per draw. Draws are independent, so the spread of the per-draw question means gives an honest
Monte Carlo band.
"""

from __future__ import annotations

import numpy as np

from backend.metrics.confidence import KEEP_FRACTION, available_rules
from backend.metrics.confidence import RULES as CONFIDENCE_RULES
from backend.metrics.coverage import comb_ratio, resolve_ks
from backend.metrics.curve import Curve, bootstrap_band, check_questions_mask, mc_band
from backend.metrics.pools import Pool

_VOTE_CELLS = 1 << 21  # (questions × k × answers) cells per vote-count block
# how deep in confidence order the filtered vote reads at k: where its m-th of k drawn samples lies on average
# (m · n / k) plus _DEPTH_SD of its standard deviations (about that / sqrt(m)) and _DEPTH_SLACK samples; a question
# that needs more is read again at the whole width
_DEPTH_SD, _DEPTH_SLACK = 4.0, 16
_TIE_RTOL = 1e-9


def best_of_n_exact(valid: np.ndarray, correct: np.ndarray, score: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(Q, K) expected correctness of the top-scored sample of a random k-subset, in closed form.

    Sort each pool by score; for a sample with `above` samples scored strictly higher and `tied` samples
    (itself included) at its score, P(it is picked) = [C(n-above, k) - C(n-above-tied, k)] / C(n, k) / tied:
    the subset holds none of the higher ones and at least one of its tie group, and the pick is uniform
    within the group. Accuracy = Σ P(picked) · correct. Requires every k <= the smallest pool."""
    n_q, width = valid.shape
    key = np.where(valid, np.where(np.isnan(score), np.inf, -score), np.nan)  # ascending; padding (NaN) last
    order = np.argsort(key, axis=1, kind="stable")
    s = np.take_along_axis(key, order, axis=1)
    c = np.take_along_axis(correct & valid, order, axis=1).astype(np.float64)
    v = np.take_along_axis(valid, order, axis=1)
    idx = np.arange(width)
    starts = np.ones((n_q, width), dtype=bool)
    starts[:, 1:] = ~(s[:, 1:] == s[:, :-1])  # NaN padding never ties
    ends = np.ones((n_q, width), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, idx, width - 1)[:, ::-1], axis=1)[:, ::-1]
    tied = (last - first + 1).astype(np.float64)
    # Σ_i correct_i/tied_i · (T[first_i] − T[last_i + 1]) with T[m] = C(n−m, k)/C(n, k): gather the weights
    # per table column once, then one matrix product serves every k
    weight = np.where(v, c / tied, 0.0)
    cols = width + 1
    row0 = (np.arange(n_q) * cols)[:, None]
    w_cols = np.bincount((row0 + first).ravel(), weights=weight.ravel(), minlength=n_q * cols)
    w_cols -= np.bincount((row0 + last + 1).ravel(), weights=weight.ravel(), minlength=n_q * cols)
    w_cols = w_cols.reshape(n_q, cols)
    n = valid.sum(axis=1)
    ks = np.asarray(ks, dtype=np.int64)
    out = np.empty((n_q, len(ks)))
    for size in np.unique(n):  # one table per distinct pool size (usually one)
        rows = n == size
        m = np.arange(size + 1)
        table = comb_ratio(size, size - m[None, :], ks[:, None])  # (K, size+1)
        out[rows] = w_cols[rows, : size + 1] @ table.T
    return out


def answer_correctness(valid: np.ndarray, correct: np.ndarray, answer_id: np.ndarray) -> np.ndarray:
    """(Q, A) fraction of each distinct answer's pool samples that are graded correct."""
    n_q = valid.shape[0]
    n_ans = max(int(answer_id.max()) + 1, 1)
    code = np.where(valid & (answer_id >= 0), answer_id, n_ans)
    flat = (np.arange(n_q)[:, None] * (n_ans + 1) + code).ravel()
    size = n_q * (n_ans + 1)
    count = np.bincount(flat, minlength=size).reshape(n_q, n_ans + 1)[:, :n_ans]
    good = np.bincount(flat, weights=(correct & valid).ravel().astype(np.float64), minlength=size)
    good = good.reshape(n_q, n_ans + 1)[:, :n_ans]
    return np.divide(good, count, out=np.zeros_like(good), where=count > 0)


def pick_weighted(counts: np.ndarray, weights: np.ndarray, answer_ok: np.ndarray) -> np.ndarray:
    """Expected correctness of the answer with the largest `weights` among those present (counts > 0),
    averaging over ties. counts/weights: (Q, K, A); answer_ok: (Q, A)."""
    present = counts > 0
    w = np.where(present, weights, -np.inf)
    top = w.max(axis=2, keepdims=True)
    with np.errstate(invalid="ignore"):
        tol = _TIE_RTOL * np.maximum(1.0, np.abs(top))
        tied = present & (w >= top - tol)
    n_tied = tied.sum(axis=2)
    hit = np.einsum("qka,qa->qk", tied.astype(np.float64), answer_ok)
    return np.divide(hit, n_tied, out=np.zeros_like(hit), where=n_tied > 0)


def prefix_vote(pool: Pool, n: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """(Q,) correctness of the vote over each question's first `n[q]` samples (sample_idx order): what an adaptive
    run that drew those samples selects. Majority by count, or the largest sum of `weight` (Q, N) when given (NaN
    weighs nothing); ties averaged; a question with no samples or no answer scores 0."""
    n_q, width = pool.valid.shape
    drawn = pool.valid & (np.arange(width)[None, :] < np.asarray(n)[:, None])
    answer_ok = answer_correctness(pool.valid, pool.correct, pool.answer_id)
    n_ans = answer_ok.shape[1]
    code = np.where(drawn & (pool.answer_id >= 0), pool.answer_id, n_ans).astype(np.int64)
    flat = (np.arange(n_q)[:, None] * (n_ans + 1) + code).ravel()
    size = n_q * (n_ans + 1)
    counts = np.bincount(flat, minlength=size).reshape(n_q, 1, n_ans + 1)[..., :n_ans]
    if weight is None:
        return pick_weighted(counts, counts, answer_ok)[:, 0]
    w = np.where(drawn, np.nan_to_num(weight, nan=0.0), 0.0).ravel()
    summed = np.bincount(flat, weights=w, minlength=size).reshape(n_q, 1, n_ans + 1)[..., :n_ans]
    return pick_weighted(counts, summed, answer_ok)[:, 0]


def vote_resampled(
    valid: np.ndarray,
    answer_id: np.ndarray,
    answer_ok: np.ndarray,
    vote_weight: np.ndarray | None,
    ks: np.ndarray,
    *,
    draws: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(D, Q, K) majority and (optionally) weighted-vote correctness on `draws` random k-subsets per k.

    One random permutation per draw: in permuted order the first k valid samples of every question form a
    uniformly random k-subset; segment counts between successive grid k are cumulated, so one bincount per
    draw serves the whole grid. Where every pool is full and k equals the pool size the result is exact."""
    if draws < 2:
        raise ValueError(f"draws must be >= 2 to report a resampling band, got {draws}")
    rng = np.random.default_rng(seed)
    n_q, width = valid.shape
    n_ans = answer_ok.shape[1]
    code = np.where(valid & (answer_id >= 0), answer_id, n_ans).astype(np.int64)
    weight = None if vote_weight is None else np.where(valid, np.nan_to_num(vote_weight, nan=0.0), 0.0)
    full = bool(valid.all())
    majority = np.empty((draws, n_q, len(ks)))
    weighted = None if weight is None else np.empty((draws, n_q, len(ks)))
    if full and ks[-1] == width:  # the whole pool: one deterministic vote, no resampling
        flat = (np.arange(n_q)[:, None] * (n_ans + 1) + code).ravel()
        counts = np.bincount(flat, minlength=n_q * (n_ans + 1)).reshape(n_q, 1, n_ans + 1)[..., :n_ans]
        majority[:, :, -1] = pick_weighted(counts, counts, answer_ok)[:, 0]
        if weight is not None and weighted is not None:  # both set together, from vote_weight
            wsum = np.bincount(flat, weights=weight.ravel(), minlength=n_q * (n_ans + 1))
            weighted[:, :, -1] = pick_weighted(counts, wsum.reshape(n_q, 1, n_ans + 1)[..., :n_ans], answer_ok)[:, 0]
        ks = ks[:-1]
    n_k = len(ks)
    if n_k == 0:
        return majority, weighted
    # positions each draw must look at: on full pools only up to the largest resampled k
    span = int(ks[-1]) if full else width
    perms = [rng.permutation(width)[:span] for _ in range(draws)]
    block = max(1, _VOTE_CELLS // ((n_k + 1) * (n_ans + 1)))
    # sample-major copies: a permutation then gathers whole rows (contiguous), not scattered columns
    code_t = np.ascontiguousarray(code.T)
    weight_t = None if weight is None else np.ascontiguousarray(weight.T)
    valid_t = None if full else np.ascontiguousarray(valid.T)
    for lo in range(0, n_q, block):
        hi = min(n_q, lo + block)
        rows = hi - lo
        ok = answer_ok[lo:hi]
        base = (np.arange(rows)[None, :] * (n_k + 1)) * (n_ans + 1)  # (1, rows)
        size = rows * (n_k + 1) * (n_ans + 1)
        if full:  # the k-segment of every position is the same in every draw
            base = base + np.searchsorted(ks, np.arange(1, span + 1), side="left")[:, None] * (n_ans + 1)
        for d, perm in enumerate(perms):
            a = code_t[perm, lo:hi]  # (span, rows)
            if valid_t is None:  # full pool
                flat = (base + a).ravel()
            else:
                v = valid_t[perm, lo:hi]
                rank = np.cumsum(v, axis=0)
                seg = np.where(v, np.searchsorted(ks, rank, side="left"), n_k)
                flat = (base + seg * (n_ans + 1) + a).ravel()
            counts = np.bincount(flat, minlength=size).reshape(rows, n_k + 1, n_ans + 1)[:, :n_k, :n_ans]
            counts = np.cumsum(counts, axis=1)
            majority[d, lo:hi, :n_k] = pick_weighted(counts, counts, ok)
            if weight_t is not None and weighted is not None:  # both set together, from vote_weight
                wsum = np.bincount(flat, weights=weight_t[perm, lo:hi].ravel(), minlength=size)
                wsum = np.cumsum(wsum.reshape(rows, n_k + 1, n_ans + 1)[:, :n_k, :n_ans], axis=1)
                weighted[d, lo:hi, :n_k] = pick_weighted(counts, wsum, ok)
    return majority, weighted


def _resampled_curve(name, values, mask, ks, pool, *, n_boot, confidence, seed, draws) -> Curve:
    per_q = values.mean(axis=0)
    mean, low, high = bootstrap_band(per_q, n_boot=n_boot, confidence=confidence, seed=seed)
    mc_low, mc_high = mc_band(values, confidence)
    return Curve(
        name,
        ks,
        mean,
        low,
        high,
        per_q,
        pool.question_ids[mask],
        False,
        mc_low,
        mc_high,
        confidence,
        {"draws": draws, "seed": seed},
        values,
    )


def best_of_n_curve(
    pool: Pool,
    verifier: str,
    ks=None,
    *,
    questions=None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Curve:
    """Best-of-N by verifier score at each k, exact: Σ_i correct_i · P(sample i tops a random k-subset),
    with P from order statistics (see `best_of_n_exact`); ties averaged."""
    mask = check_questions_mask(questions, pool.n_questions)
    ks = resolve_ks(pool, mask, ks)
    score = pool.score(verifier)[mask]
    per_q = best_of_n_exact(pool.valid[mask], pool.correct[mask], score, ks)
    mean, low, high = bootstrap_band(per_q, n_boot=n_boot, confidence=confidence, seed=seed)
    return Curve(
        f"best_of_n[{verifier}]",
        ks,
        mean,
        low,
        high,
        per_q,
        pool.question_ids[mask],
        True,
        mean,
        mean,
        confidence,
        {"verifier": verifier},
    )


def majority_curve(
    pool: Pool,
    ks=None,
    *,
    questions=None,
    draws: int = 32,
    seed: int = 0,
    n_boot: int = 1000,
    confidence: float = 0.95,
) -> Curve:
    """Majority vote at each k: E over random k-subsets of correct(most frequent answer), ties averaged;
    resampled (`draws` permutations, fixed seed) with a Monte Carlo band."""
    return selection_curves(
        pool, None, ks, questions=questions, draws=draws, seed=seed, n_boot=n_boot, confidence=confidence
    )["majority"]


def weighted_best_of_n_curve(
    pool: Pool,
    verifier: str,
    ks=None,
    *,
    questions=None,
    draws: int = 32,
    seed: int = 0,
    n_boot: int = 1000,
    confidence: float = 0.95,
) -> Curve:
    """Weighted best-of-N at each k: E over random k-subsets of correct(argmax_answer Σ verifier scores),
    ties averaged; resampled (`draws` permutations, fixed seed) with a Monte Carlo band."""
    return selection_curves(
        pool, verifier, ks, questions=questions, draws=draws, seed=seed, n_boot=n_boot, confidence=confidence
    )[f"weighted_best_of_n[{verifier}]"]


def selection_curves(
    pool: Pool,
    verifier: str | None,
    ks=None,
    *,
    questions=None,
    draws: int = 32,
    seed: int = 0,
    n_boot: int = 1000,
    confidence: float = 0.95,
    confidence_rules: bool = True,
) -> dict[str, Curve]:
    """Majority, and with a verifier also best-of-N and weighted best-of-N, sharing one resampling pass; then the
    confidence-aware rules the pool's samples carry signals for (backend/metrics/confidence.py), unless
    `confidence_rules` is False (the other rules' curves are the same either way: each rule resamples on its own).

    Keys: "majority", "best_of_n[<verifier>]", "weighted_best_of_n[<verifier>]", and of "deepconf_weighted",
    "deepconf_filtered", "perplexity_consistency" those available."""
    mask = check_questions_mask(questions, pool.n_questions)
    ks = resolve_ks(pool, mask, ks)
    valid, correct, answer_id = pool.valid[mask], pool.correct[mask], pool.answer_id[mask]
    score = None if verifier is None else pool.score(verifier)[mask]
    answer_ok = answer_correctness(valid, correct, answer_id)
    maj, wtd = vote_resampled(valid, answer_id, answer_ok, score, ks, draws=draws, seed=seed)
    opts = dict(n_boot=n_boot, confidence=confidence, seed=seed, draws=draws)
    out = {"majority": _resampled_curve("majority", maj, mask, ks, pool, **opts)}
    if verifier is not None:
        out[f"best_of_n[{verifier}]"] = best_of_n_curve(
            pool, verifier, ks, questions=mask, n_boot=n_boot, confidence=confidence, seed=seed
        )
        name = f"weighted_best_of_n[{verifier}]"
        out[name] = _resampled_curve(name, wtd, mask, ks, pool, **opts)
        out[name].meta["verifier"] = verifier
    if confidence_rules:
        out.update(
            confidence_curves(pool, ks, questions=mask, draws=draws, seed=seed, n_boot=n_boot, confidence=confidence)
        )
    return out


class FirstCopies:
    """Which cells hold the first copy, in a permuted order, of their reasoning path: a k-prefix of the order
    holds a path exactly when it holds that path's first copy, so weighting first copies alone counts each distinct
    path of every prefix once. Cells are grouped by (question, path) once; per order, one reduceat."""

    def __init__(self, valid: np.ndarray, path_id: np.ndarray):
        q, col = np.nonzero(valid)
        order = np.lexsort((path_id[q, col], q))
        self.q, self.col = q[order], col[order]
        key = self.q.astype(np.int64) * (int(path_id.max()) + 1) + path_id[self.q, self.col]
        self.starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
        self.sizes = np.diff(np.r_[self.starts, key.size])
        self.shape = valid.shape

    def mask(self, perm: np.ndarray) -> np.ndarray:
        """(Q, N) in original column order: True where the cell comes first among its path's copies in `perm`."""
        out = np.zeros(self.shape, dtype=bool)
        if not self.q.size:
            return out
        position = np.empty(self.shape[1], dtype=np.int64)
        position[perm] = np.arange(self.shape[1])
        pos = position[self.col]
        first = np.repeat(np.minimum.reduceat(pos, self.starts), self.sizes)
        keep = pos == first
        out[self.q[keep], self.col[keep]] = True
        return out


def path_probability(valid: np.ndarray, path_id: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """(Q, N) each valid cell's path probability: the mean of the stored probabilities of its path's copies in the
    pool (copies of one completion differ only by the engine's float noise; NaN copies are left out, a path with
    none weighs nothing)."""
    n_q = valid.shape[0]
    n_paths = int(path_id.max()) + 1 if valid.any() else 1
    flat = (np.arange(n_q)[:, None] * n_paths + np.where(valid, path_id, 0)).ravel()
    known = (valid & np.isfinite(probability)).ravel()
    total = np.bincount(flat[known], weights=probability.ravel()[known], minlength=n_q * n_paths)
    copies = np.bincount(flat[known], minlength=n_q * n_paths)
    mean = np.divide(total, copies, out=np.zeros_like(total), where=copies > 0)
    return np.where(valid, mean[flat].reshape(valid.shape), 0.0)


def confidence_votes(
    valid: np.ndarray,
    answer_id: np.ndarray,
    answer_ok: np.ndarray,
    confidence: np.ndarray,
    probability: np.ndarray,
    ks: np.ndarray,
    *,
    draws: int,
    seed: int,
    keep_fraction: float = KEEP_FRACTION,
    path_id: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{rule: (D, Q, K) correctness} of the confidence rules (backend/metrics/confidence.py) on `draws` random
    k-subsets per k. `confidence` and `probability` are (Q, N) per-sample weights, NaN where unknown (they then weigh
    nothing). `path_id` (Q, N) codes each sample's reasoning path within its question (None: all distinct):
    perplexity consistency counts each distinct path of a k-subset once, at its probability (`path_probability`).

    One random permutation per draw, as in `vote_resampled`: the two weighted votes are sums over the subset, so
    one bincount of the segments between successive k, cumulated, serves every k at once. The filtered vote needs
    each k's own threshold (the m-th most confident of its k samples): a small k reads the columns that hold the
    first k valid samples of every question and finds it by partition; a large k reads the samples in decreasing
    confidence, where it lies about a tenth of the pool deep (`_FilteredVote`). Either way one tally serves every k."""
    if draws < 2:
        raise ValueError(f"draws must be >= 2 to report a resampling band, got {draws}")
    rng = np.random.default_rng(seed)
    n_q, width = valid.shape
    n_ans = answer_ok.shape[1]
    code = np.where(valid & (answer_id >= 0), answer_id, n_ans).astype(np.int64)
    conf = np.where(valid, np.nan_to_num(confidence, nan=0.0), 0.0)
    if path_id is None:
        prob = np.where(valid, np.nan_to_num(probability, nan=0.0), 0.0)
        first_copies = None
    else:
        prob = path_probability(valid, path_id, probability)
        first_copies = FirstCopies(valid, path_id)
    ks = np.asarray(ks, dtype=np.int64)
    n_k = len(ks)
    out = {rule: np.empty((draws, n_q, n_k)) for rule in CONFIDENCE_RULES}
    block = max(1, _VOTE_CELLS // ((n_k + 1) * (n_ans + 1)))
    filtered = _FilteredVote(valid, code, conf, answer_ok, ks, keep_fraction)
    full = bool(valid.all())
    if full:  # every pool whole: a position's rank and k-segment are the same in every row and every draw
        rank_row = np.arange(1, width + 1)
        rank_full = np.broadcast_to(rank_row, (n_q, width))
        seg_full = np.broadcast_to(np.searchsorted(ks, rank_row, side="left"), (n_q, width))
    for d in range(draws):
        perm = rng.permutation(width)
        a, c = code[:, perm], conf[:, perm]
        p = prob[:, perm] if first_copies is None else np.where(first_copies.mask(perm), prob, 0.0)[:, perm]
        if full:
            v, rank, seg = valid, rank_full, seg_full
        else:
            v = valid[:, perm]
            rank = np.cumsum(v, axis=1)
            seg = np.where(v, np.searchsorted(ks, rank, side="left"), n_k)  # the first k whose subset holds the sample
        for lo in range(0, n_q, block):
            hi = min(n_q, lo + block)
            rows = hi - lo
            flat = ((np.arange(rows)[:, None] * (n_k + 1) + seg[lo:hi]) * (n_ans + 1) + a[lo:hi]).ravel()
            size = rows * (n_k + 1) * (n_ans + 1)

            def summed(weights, _flat=flat, _size=size, _rows=rows):
                total = np.bincount(_flat, weights=weights, minlength=_size)
                return np.cumsum(total.reshape(_rows, n_k + 1, n_ans + 1)[:, :n_k, :n_ans], axis=1)

            counts = summed(None)
            ok = answer_ok[lo:hi]
            out["deepconf_weighted"][d, lo:hi] = pick_weighted(counts, summed(c[lo:hi].ravel()), ok)
            out["perplexity_consistency"][d, lo:hi] = pick_weighted(counts, summed(p[lo:hi].ravel()), ok)
        # the most confident ceil(keep_fraction · k) of the k (at least one) vote
        filtered.draw(perm, v, a, c, rank, out["deepconf_filtered"][d])
    return out


class _FilteredVote:
    """DeepConf's filtered vote (the most confident ceil(keep_fraction · k) of a k-subset, at least one, vote weighted
    by confidence; every sample tied with the last kept one votes too) for every k of a grid, one permutation at a
    time. The kept set of k is read one of two ways, whichever touches fewer cells, with the same threshold and so
    the same votes: small k from the permutation's first k samples (the threshold by partition); large k from the
    samples in decreasing confidence (sorted once for every draw), where the kept ones are the first m of those
    among the k drawn: about keep_fraction of the pool deep whatever k is, where a prefix is k deep."""

    def __init__(self, valid, code, conf, answer_ok, ks, keep_fraction):
        self.valid, self.code, self.conf, self.answer_ok, self.ks = valid, code, conf, answer_ok, ks
        n_q, self.width = valid.shape
        self.n_valid = valid.sum(axis=1)
        self.full = bool(valid.all())
        self.m = np.maximum(1, np.ceil(keep_fraction * np.minimum(ks[None, :], self.n_valid[:, None]))).astype(np.int64)
        # draw-independent: each question's samples in decreasing confidence, padding last
        self.by_conf = np.argsort(np.where(valid, -conf, np.inf), axis=1, kind="stable")
        self.conf_sorted = np.take_along_axis(conf, self.by_conf, axis=1)
        self.code_sorted = np.take_along_axis(code, self.by_conf, axis=1)
        # how deep in confidence order the m-th of k drawn samples lies: about m · n / k (_DEPTH_SD, _DEPTH_SLACK)
        n_max = int(self.n_valid.max()) if n_q else 0
        m_max = self.m.max(axis=0, initial=1)
        mean = m_max * (n_max + 1) / (ks + 1)
        depth = np.ceil(mean * (1 + _DEPTH_SD / np.sqrt(m_max))).astype(np.int64) + _DEPTH_SLACK
        self.depth = np.minimum(self.width, depth)

    def draw(self, perm, v, a, c, rank, out):
        """Fill out (Q, K) for one permutation `perm`; v, a, c and rank: validity, answer code, confidence and valid
        rank (1-based) in its order. Each k's kept samples are gathered, then one tally and one pick serve every k."""
        n_q, width = v.shape
        n_k, n_ans = len(self.ks), self.answer_ok.shape[1]
        if n_k == 0:
            return
        rank_sorted = None
        every = np.arange(n_q)
        kept_row, kept_k, kept_code, kept_conf = [], [], [], []
        for j, k in enumerate(self.ks):
            m = self.m[:, j]
            if self.depth[j] < k:  # deep in the pool: read it in confidence order
                if rank_sorted is None:  # each sample's valid rank in this draw, in confidence order
                    if self.full:  # a sample's rank is its position in the permutation
                        position = np.empty(width, dtype=np.int64)
                        position[perm] = np.arange(1, width + 1)
                        rank_sorted = position[self.by_conf]
                    else:
                        at = np.empty((n_q, width), dtype=np.int64)
                        at[:, perm] = np.where(v, rank, width + 1)
                        rank_sorted = np.take_along_axis(at, self.by_conf, axis=1)
                for row, code, conf in self._sorted_keep(every, rank_sorted, k, m, int(self.depth[j])):
                    kept_row.append(row)
                    kept_k.append(np.full(len(row), j))
                    kept_code.append(code)
                    kept_conf.append(conf)
                continue
            span = k if self.full else min(width, int((rank < k).sum(axis=1).max()) + 1)  # every row's first k
            in_k = v[:, :span] & (rank[:, :span] <= k)
            ck = c[:, :span]
            top = -np.where(in_k, ck, -np.inf)
            m_col = np.minimum(m, span) - 1
            if (m_col == m_col[0]).all():  # the usual case, k within every pool: one partition
                threshold = -np.partition(top, int(m_col[0]), axis=1)[:, int(m_col[0])]
            else:
                threshold = -np.sort(top, axis=1)[np.arange(n_q), m_col]
            row, col = np.nonzero(in_k & (ck >= threshold[:, None]))
            kept_row.append(row)
            kept_k.append(np.full(len(row), j))
            kept_code.append(a[row, col])
            kept_conf.append(ck[row, col])
        flat = (np.concatenate(kept_row) * n_k + np.concatenate(kept_k)) * (n_ans + 1) + np.concatenate(kept_code)
        size = n_q * n_k * (n_ans + 1)
        counts = np.bincount(flat, minlength=size).reshape(n_q, n_k, n_ans + 1)[..., :n_ans]
        weights = np.bincount(flat, weights=np.concatenate(kept_conf), minlength=size)
        out[:] = pick_weighted(counts, weights.reshape(n_q, n_k, n_ans + 1)[..., :n_ans], self.answer_ok)

    def _sorted_keep(self, rows, rank_sorted, k, m_all, depth):
        """The kept samples of `rows` at k as (row, answer code, confidence) arrays, reading the first `depth` samples
        in confidence order (rows it cannot settle there are read again at the whole width)."""
        every = len(rows) == len(m_all)  # all rows, in order: views, not copies
        drawn = (rank_sorted[:, :depth] if every else rank_sorted[rows, :depth]) <= k
        seen = np.cumsum(drawn, axis=1, dtype=np.int32)
        m = m_all[rows]
        reached = seen[:, -1] >= m
        at = np.argmax(seen >= m[:, None], axis=1)
        cs = self.conf_sorted[:, :depth] if every else self.conf_sorted[rows, :depth]
        threshold = np.where(reached, cs[np.arange(len(rows)), at], np.inf)
        if depth < self.width:  # ties of the threshold past the depth, or the m-th drawn not reached: go deeper
            deeper = ~reached | (self.conf_sorted[rows, depth] >= threshold)
        else:
            deeper = np.zeros(len(rows), dtype=bool)
        i, col = np.nonzero(drawn & (cs >= threshold[:, None]) & ~deeper[:, None])
        yield rows[i], self.code_sorted[rows[i], col], cs[i, col]
        if deeper.any():
            yield from self._sorted_keep(rows[deeper], rank_sorted, k, m_all, self.width)


def confidence_curves(
    pool,
    ks=None,
    *,
    questions=None,
    draws: int = 32,
    seed: int = 0,
    n_boot: int = 1000,
    confidence: float = 0.95,
) -> dict:
    """{rule: Curve} for the confidence rules this pool can serve (`available_rules`)."""
    rules = available_rules(pool)
    if not rules:
        return {}
    mask = check_questions_mask(questions, pool.n_questions)
    ks = resolve_ks(pool, mask, ks)
    valid, correct, answer_id = pool.valid[mask], pool.correct[mask], pool.answer_id[mask]
    nan = np.full(valid.shape, np.nan)
    conf = pool.confidence[mask] if pool.confidence is not None else nan
    prob = np.exp(pool.logprob_mean[mask]) if pool.logprob_mean is not None else nan
    path_id = None if pool.path_id is None else pool.path_id[mask]
    votes = confidence_votes(
        valid,
        answer_id,
        answer_correctness(valid, correct, answer_id),
        conf,
        prob,
        ks,
        draws=draws,
        seed=seed,
        path_id=path_id,
    )
    opts = dict(n_boot=n_boot, confidence=confidence, seed=seed, draws=draws)
    return {rule: _resampled_curve(rule, votes[rule], mask, ks, pool, **opts) for rule in rules}
