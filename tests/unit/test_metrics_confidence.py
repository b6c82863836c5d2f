"""Confidence-aware selection pinned against its formulas: DeepConf's token confidence from an engine's top-k
logprobs, the lowest group confidence against a loop over every window, and the three rules against brute-force
enumeration of every k-subset of small pools."""

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest

from backend.engines.base import TokenLogprob
from backend.metrics import pool_from_arrays, selection_curves
from backend.metrics.confidence import SCALE, encode_token_confidence, trace_confidence


def test_token_confidence_is_minus_the_mean_top_k_logprob_in_sixteenths_of_a_nat():
    tokens = [
        TokenLogprob("a", -0.1, {"a": -0.1, "b": -2.5, "c": -3.0}),
        TokenLogprob("b", -1.0, {}),  # no alternatives reported: the chosen token's own
        TokenLogprob("c", -50.0, {"c": -50.0, "d": -60.0}),  # beyond the byte's range: clipped
        TokenLogprob("d", float("-inf"), {"e": float("-inf"), "f": -1.0}),  # -inf alternatives are dropped
    ]
    assert encode_token_confidence(tokens) == [round(5.6 / 3 * SCALE), 16, 255, 16]
    assert encode_token_confidence(None) is None and encode_token_confidence([]) == []


def _lowest_window_mean(values, window):
    if not values:
        return math.nan
    w = min(window, len(values))
    return min(sum(values[i : i + w]) / w for i in range(len(values) - w + 1)) / SCALE


def test_trace_confidence_is_the_lowest_window_mean_of_each_trace():
    rng = np.random.default_rng(4)
    traces = [rng.integers(0, 256, int(n)).tolist() for n in rng.integers(0, 40, 30)] + [None, [7]]
    arr = pa.array(traces, type=pa.list_(pa.uint8()))
    for window in (1, 4, 16, 64):
        expected = [_lowest_window_mean(t or [], window) for t in traces]
        np.testing.assert_allclose(trace_confidence(arr, window), expected, rtol=1e-12)
        np.testing.assert_allclose(trace_confidence(arr.slice(5), window), expected[5:], rtol=1e-12)


def _brute(valid, correct, answer, conf, prob, k, keep):
    """Mean over all k-subsets of (confidence-weighted, filtered, perplexity-consistency) with uniform ties."""
    idx = np.flatnonzero(valid)
    ok = {a: correct[idx[answer[idx] == a]].mean() for a in set(answer[idx]) - {-1}}

    def vote(members, weight):
        voted = [i for i in members if answer[i] != -1]
        if not voted:
            return 0.0
        sums = {}
        for i in voted:
            sums[answer[i]] = sums.get(answer[i], 0.0) + weight[i]
        top = max(sums.values())
        return np.mean([ok[a] for a, s in sums.items() if s >= top - 1e-9 * max(1.0, abs(top))])

    out = np.zeros(3)
    subsets = list(itertools.combinations(idx, k))
    for sub in subsets:
        m = max(1, math.ceil(keep * k))
        threshold = sorted(conf[list(sub)], reverse=True)[m - 1]
        kept = [i for i in sub if conf[i] >= threshold]
        out += [vote(sub, conf), vote(kept, conf), vote(sub, prob)]
    return out / len(subsets)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rules_match_brute_force_over_every_k_subset(seed):
    rng = np.random.default_rng(seed)
    n_q, width = 5, 8
    answer = rng.integers(-1, 3, (n_q, width))
    correct = answer == rng.integers(0, 3, (n_q, 1))
    conf = rng.integers(8, 40, (n_q, width)) / 8.0  # coarse: real ties
    logprob_mean = -rng.integers(1, 6, (n_q, width)) / 4.0
    pool = pool_from_arrays(correct, answer, confidence=conf, logprob_mean=logprob_mean)
    ks = [1, 2, 4, 7, 8]
    curves = selection_curves(pool, None, ks, draws=3000, seed=5, confidence=0.999, n_boot=0)
    assert {"deepconf_weighted", "deepconf_filtered", "perplexity_consistency"} <= set(curves)
    for j, k in enumerate(ks):
        truth = np.array(
            [
                _brute(pool.valid[q], pool.correct[q], pool.answer_id[q], conf[q], np.exp(logprob_mean[q]), k, 0.1)
                for q in range(n_q)
            ]
        ).mean(axis=0)
        for col, name in enumerate(("deepconf_weighted", "deepconf_filtered", "perplexity_consistency")):
            c = curves[name]
            assert c.mc_low[j] - 1e-12 <= truth[col] <= c.mc_high[j] + 1e-12, (name, k, truth[col], c.mean[j])


def test_confident_minority_beats_an_unsure_majority():
    """Three unsure wrong traces against two confident right ones: majority picks wrong at the full pool, the
    confidence filter (top 10%: the single most confident trace) picks right."""
    answer = np.array([[1, 1, 1, 0, 0]])
    correct = answer == 0
    conf = np.array([[1.0, 1.1, 0.9, 3.0, 2.9]])
    pool = pool_from_arrays(correct, answer, confidence=conf, logprob_mean=np.log([[0.2, 0.2, 0.2, 0.9, 0.9]]))
    curves = selection_curves(pool, None, [5], draws=4, n_boot=0)
    assert curves["majority"].mean[-1] == 0.0
    assert curves["deepconf_filtered"].mean[-1] == 1.0
    assert curves["deepconf_weighted"].mean[-1] == 1.0  # 5.9 of confidence against 3.0
    assert curves["perplexity_consistency"].mean[-1] == 1.0  # 1.8 of probability against 0.6


def test_a_pool_without_signals_gets_no_confidence_rules():
    pool = pool_from_arrays(np.ones((2, 4), dtype=bool))
    assert set(selection_curves(pool, None, [2], draws=2, n_boot=0)) == {"majority"}
