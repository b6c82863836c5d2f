"""Confidence-aware selection over stored pools, next to majority and best-of-N: the model's own token
probabilities, no verifier.

- **Token confidence** (DeepConf, arXiv 2508.15260): at each generated position, minus the mean log-probability of
  the top-k candidate tokens, C = −(1/k) Σ_j log P(j); high when the model's distribution is peaked. A candidate
  the engine reports at −inf, below `LOGPROB_FLOOR`, or not at all (a position with fewer than k alternatives, or
  none) has probability ≈ 0 and counts at `LOGPROB_FLOOR`: the fewer real alternatives, the more confident the
  position, as DeepConf's C says (dropping them would make the most peaked positions read as the least
  confident). Sampling stores C per token (`samples.token_confidence`) in 1/16-nat steps, two bytes per token
  since shard layout 8, a range (0 to 4,096 nats) that holds every value the floor allows; layouts 5-7 stored
  one byte, saturating at 15.9 nats, with the chosen token's −logprob where no alternative was reported.
- **Trace confidence**: the *lowest group confidence*, the minimum over sliding windows of `GROUP_WINDOW` tokens of
  the window's mean token confidence (a trace is as confident as its shakiest stretch; a shorter trace is one
  window). DeepConf's windows are 2,048 tokens for traces of many thousands; ours are scaled to short traces.
- **deepconf_weighted**: each answer gets the sum of its traces' confidences; the largest sum wins.
- **deepconf_filtered** (DeepConf's offline "low" setting): of the k traces, only the most confident
  `KEEP_FRACTION` (at least one) vote, weighted by confidence.
- **perplexity_consistency** (the perplexity-consistency half of RPC, Zhou et al. 2025, "A Theoretical Study on
  Bridging Internal Probability and Self-Consistency for LLM Reasoning"; reference code compute_rpc.py,
  `wpc_evaluator`): each answer gets the sum of the probabilities exp(mean token log-prob) of its *distinct*
  reasoning paths — a completion drawn three times counts once — and the largest sum wins. Paths are identified
  by their completion text (backend/metrics/pools.py `PATH_SQL`), a path's probability is the mean over its
  copies. RPC's reasoning pruning (a Weibull mixture fitted to the traces' probabilities) is not built.

Like majority, each rule is evaluated as its expectation over random k-subsets of the pool, by resampling (one
random permutation per draw; its first k valid samples are a uniform k-subset), vectorised over questions; ties
are broken uniformly at random (averaged), and samples without an answer never win (the votes live with the other
rules, backend/metrics/selection.py `confidence_votes`). Rules whose signal a pool
lacks (written before the store kept token confidences, or by an engine without logprobs) are left out, and
`missing_signals` says why."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

TOP_K = 5
"""Candidates per position the sampler asks the engine for (the chosen token's logprob and the top TOP_K)."""
SCALE = 16
"""Stored token confidence = round(C · SCALE) as uint16 (shard layout 8; uint8 before): 1/16-nat steps."""
MAX_CODE = 2**16 - 1
LOGPROB_FLOOR = math.log(float(np.finfo(np.float32).smallest_subnormal))
"""≈ −103.28 nats: the log of the smallest positive float32, the largest value a probability that underflowed to 0
can stand for. What the engines report for one reads as this floor: vLLM in-process −inf, vLLM's server −9999,
llama.cpp's server the lowest float (−3.4e38). So C is at most −LOGPROB_FLOOR ≈ 103.3 nats, code 1,652."""
GROUP_WINDOW = 32
KEEP_FRACTION = 0.1
RULES = ("deepconf_weighted", "deepconf_filtered", "perplexity_consistency")


def top_k_confidence(logprob: float, top: Sequence[float], k: int = TOP_K) -> float:
    """DeepConf's C = −(1/k) Σ_j log P(j) over the k most probable of `top` (the engine's alternatives; the chosen
    token's `logprob` when it reported none), every candidate at least LOGPROB_FLOOR (−inf and NaN included) and
    every candidate not reported at LOGPROB_FLOOR (probability ≈ 0)."""
    floored = [v if v > LOGPROB_FLOOR else LOGPROB_FLOOR for v in (top if len(top) else [logprob])]  # NaN too
    known = sorted(floored, reverse=True)[:k]
    return -(sum(known) + (k - len(known)) * LOGPROB_FLOOR) / k


def encode_token_confidence(logprobs: Sequence | None, k: int = TOP_K) -> list[int] | None:
    """Per generated token, round(C · SCALE) (`top_k_confidence`) from an engine's TokenLogprobs; None when it
    returned none."""
    if logprobs is None:
        return None
    return [
        min(MAX_CODE, max(0, round(top_k_confidence(t.logprob, list(t.top.values()), k) * SCALE))) for t in logprobs
    ]


CHUNK_TOKENS = 1 << 20
"""Tokens per block of traces in `trace_confidence`: small arrays stay in cache and are reused, where one pass over
a million traces' tokens spent most of its time faulting in fresh pages."""


def trace_confidence(token_confidence: pa.Array | pa.ChunkedArray, window: int = GROUP_WINDOW) -> np.ndarray:
    """Per trace, the lowest mean token confidence over sliding windows of `window` tokens (the whole trace when
    shorter), in nats; NaN for a trace with no stored confidence.

    The stored codes are integers, so window sums come exactly from an int64 cumulative sum: per block of traces
    (`CHUNK_TOKENS`), every window of the block at once, those that cross a trace's end masked, one minimum per
    trace. Vectorised within a block; the loop runs over blocks, not traces."""
    arr = token_confidence.combine_chunks() if isinstance(token_confidence, pa.ChunkedArray) else token_confidence
    n = len(arr)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    offsets = arr.offsets.to_numpy().astype(np.int64)  # into arr.values (a sliced array's offsets included)
    lengths = np.diff(offsets)
    if arr.null_count:
        lengths[~arr.is_valid().to_numpy(zero_copy_only=False)] = 0
    if not (lengths > 0).any():
        return out
    codes = arr.values.to_numpy(zero_copy_only=False)
    edges = np.unique(np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], CHUNK_TOKENS), side="right") - 1)
    edges = np.append(edges[edges < n], n)
    for t0, t1 in zip(edges[:-1], edges[1:]):
        a, b = offsets[t0], offsets[t1]
        out[t0:t1] = _block_confidence(codes[a:b], offsets[t0:t1] - a, lengths[t0:t1], window)
    return out


def trace_confidence_of(codes: Sequence[int] | None) -> float | None:
    """One trace's `trace_confidence` from its stored codes (None: no confidences stored; NaN: no tokens), as the
    sampler writes it beside them (store/schema.py, layout 10); the same arithmetic as a block of one."""
    if codes is None:
        return None
    arr = np.asarray(codes, dtype=np.int64)
    if not arr.size:
        return math.nan
    return float(_block_confidence(arr, np.zeros(1, np.int64), np.asarray([arr.size]), GROUP_WINDOW)[0])


def _block_confidence(codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, window: int) -> np.ndarray:
    """`trace_confidence` of consecutive traces whose codes are `codes` (a trace's tokens at starts..+lengths)."""
    out = np.full(len(starts), np.nan)
    cs = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum(codes, dtype=np.int64, out=cs[1:])
    short = (lengths > 0) & (lengths <= window)  # one window: the whole trace
    out[short] = (cs[starts[short] + lengths[short]] - cs[starts[short]]) / lengths[short] / SCALE
    long = lengths > window
    if long.any():
        sums = cs[window:] - cs[:-window]  # the window starting at each position of the block
        # per token, where its trace ends, or -1 in a short trace: a window that crosses its trace's end or starts in
        # a short trace (whose windows reduceat would count with the long trace before it) is masked
        ends = np.repeat(np.where(long, starts + lengths, -1), lengths)
        sums[np.arange(len(sums)) + window > ends[: len(sums)]] = np.iinfo(np.int64).max
        out[long] = np.minimum.reduceat(sums, starts[long]) / window / SCALE
    return out


def available_rules(pool) -> list[str]:
    """The rules whose signal every valid sample of some question carries in this pool."""
    out = []
    if pool.confidence is not None and np.isfinite(pool.confidence[pool.valid]).any():
        out += ["deepconf_weighted", "deepconf_filtered"]
    if pool.logprob_mean is not None and np.isfinite(pool.logprob_mean[pool.valid]).any():
        out.append("perplexity_consistency")
    return out


def missing_signals(pool) -> list[str]:
    """One line per confidence rule this pool cannot serve, saying why."""
    have = set(available_rules(pool))
    lines = []
    if "deepconf_weighted" not in have:
        lines.append(
            "deepconf_weighted and deepconf_filtered need per-token confidences, which these samples do not carry "
            "(written before the store kept them, shard layout < 5, by an engine without logprobs, or imported from "
            "a log that holds none); sample again with logprobs to compare them"
        )
    if "perplexity_consistency" not in have:
        lines.append("perplexity_consistency needs token log-probabilities, which these samples do not carry")
    return lines
