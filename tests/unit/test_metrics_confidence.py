"""Confidence-aware selection pinned against its formulas: DeepConf's token confidence from an engine's top-k
logprobs, the lowest group confidence against a loop over every window, and the three rules against brute-force
enumeration of every k-subset of small pools."""

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.engines.base import TokenLogprob
from backend.metrics import selection
from backend.metrics.confidence import (
    LOGPROB_FLOOR,
    MAX_CODE,
    RULES,
    SCALE,
    encode_token_confidence,
    top_k_confidence,
    trace_confidence,
    trace_confidence_of,
)
from backend.metrics.pools import pool_from_arrays
from backend.metrics.selection import selection_curves
from bench.page_compute import per_k_confidence_votes


def _deepconf(chosen: float, top: list[float], k: int) -> float:
    """DeepConf's C written from the definition: the k best candidates (the chosen token alone when none was
    reported), each missing one at probability ≈ 0 (the floor), every one at least the floor."""
    reported = [-math.inf if math.isnan(v) else v for v in (top or [chosen])]
    candidates = sorted(reported, reverse=True)[:k] + [-math.inf] * max(0, k - len(reported))
    return -float(np.mean(np.maximum(candidates, LOGPROB_FLOOR)))


def test_token_confidence_is_minus_the_mean_top_k_logprob_in_sixteenths_of_a_nat():
    top5 = {"a": -0.1, "b": -2.5, "c": -3.0, "d": -4.0, "e": -5.0}
    peaked = {"a": -0.01, "b": -20.0, "c": -22.0, "d": -25.0, "e": -30.0}
    tokens = [
        TokenLogprob("a", -0.1, top5),
        TokenLogprob("a", -0.01, peaked),  # 19.4 nats: the one-byte encoding saturated at 15.9
        TokenLogprob("c", -50.0, {"c": -50.0, "d": -60.0, "e": -70.0, "f": -80.0, "g": -90.0}),
    ]
    assert encode_token_confidence(tokens) == [round(14.6 / 5 * SCALE), round(19.406 * SCALE), round(70 * SCALE)]
    assert encode_token_confidence(None) is None and encode_token_confidence([]) == []
    assert math.log(np.finfo(np.float32).smallest_subnormal) == LOGPROB_FLOOR
    # the widest C the floor allows still fits the stored type with room to spare
    assert round(-LOGPROB_FLOOR * SCALE) == 1652 <= MAX_CODE == np.iinfo(np.uint16).max


def test_fallbacks_go_in_deepconfs_direction():
    """A position with no alternatives reported is the most confident, not the least; −inf alternatives (and the
    engines' stand-ins for them: vLLM's server −9999, llama.cpp's server the lowest float) are probability ≈ 0."""
    near_certain = top_k_confidence(-0.001, [])
    assert near_certain == pytest.approx((0.001 - 4 * LOGPROB_FLOOR) / 5)
    assert near_certain > top_k_confidence(-0.01, [-0.01, -20.0, -22.0, -25.0, -30.0])  # peaked, but alternatives
    lowest_float = float(np.finfo(np.float32).min)
    for gone in (-math.inf, -9999.0, lowest_float, math.nan):
        assert top_k_confidence(-0.01, [-0.01, gone, gone, gone, gone]) == pytest.approx((0.01 - 4 * LOGPROB_FLOOR) / 5)
    # dropping −inf alternatives (the old rule) made the most peaked position read as C = 0.01, the least confident
    assert top_k_confidence(-0.01, [-0.01] + [-math.inf] * 4) > top_k_confidence(-0.01, [-0.01, -1, -2, -3, -4]) > 2
    assert top_k_confidence(-math.inf, []) == pytest.approx(-LOGPROB_FLOOR)  # nothing known: the floor everywhere
    many = [-0.1, -0.2, -9.0, -8.0, -7.0, -6.0, -30.0]  # more than k reported: the k best count
    assert top_k_confidence(-0.1, many) == pytest.approx((0.1 + 0.2 + 6 + 7 + 8) / 5)


_logprob = st.one_of(
    st.floats(-200.0, 0.0),
    st.sampled_from([-math.inf, math.nan, -9999.0, float(np.finfo(np.float32).min), 0.0]),
)


@settings(max_examples=2000, deadline=None)
@given(_logprob, st.lists(_logprob, max_size=9), st.integers(1, 8))
def test_token_confidence_property_against_the_definition(chosen, top, k):
    c = top_k_confidence(chosen, top, k)
    assert c == pytest.approx(_deepconf(chosen, top, k), abs=1e-9)
    assert 0.0 <= c <= -LOGPROB_FLOOR + 1e-12
    code = encode_token_confidence([TokenLogprob("t", chosen, {str(i): v for i, v in enumerate(top)})], k)
    assert code is not None and abs(code[0] / SCALE - c) <= 0.5 / SCALE + 1e-12  # never saturates
    if top:  # an alternative that was not reported, or reported at −inf, never makes the position less confident
        j = len(top) // 2
        assert top_k_confidence(chosen, top[:j] + [-math.inf] + top[j + 1 :], k) >= c - 1e-9
        if len(top) > 1:
            assert top_k_confidence(chosen, top[:j] + top[j + 1 :], k) >= c - 1e-9


def _lowest_window_mean(values, window):
    if not values:
        return math.nan
    w = min(window, len(values))
    return min(sum(values[i : i + w]) / w for i in range(len(values) - w + 1)) / SCALE


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])  # blocks of traces: many (some traces longer than one), one
def test_trace_confidence_is_the_lowest_window_mean_of_each_trace(chunk, monkeypatch):
    from backend.metrics import confidence

    monkeypatch.setattr(confidence, "CHUNK_TOKENS", chunk)
    rng = np.random.default_rng(4)
    traces = [rng.integers(0, 1653, int(n)).tolist() for n in rng.integers(0, 40, 30)] + [None, [7]]
    arr = pa.array(traces, type=pa.list_(pa.uint16()))
    for window in (1, 4, 16, 64):
        expected = [_lowest_window_mean(t or [], window) for t in traces]
        np.testing.assert_allclose(trace_confidence(arr, window), expected, rtol=1e-12)
        np.testing.assert_allclose(trace_confidence(arr.slice(5), window), expected[5:], rtol=1e-12)


def test_the_trace_confidence_written_with_a_sample_is_the_one_a_pool_would_compute():
    """The sampler stores each trace's confidence (layout 10); a pool computed it from the tokens before: the same
    number, bit for bit, for long and short traces; NaN for no tokens, None for none stored."""
    rng = np.random.default_rng(5)
    traces = [rng.integers(0, 1653, int(n)).tolist() for n in rng.integers(1, 200, 40)] + [[], None]
    expected = trace_confidence(pa.array(traces, type=pa.list_(pa.uint16())))
    got = [trace_confidence_of(t) for t in traces]
    assert got[-1] is None
    np.testing.assert_array_equal(np.asarray(got[:-1], dtype=float), expected[:-1])


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


def _brute_rpc(valid, correct, answer, path, prob, k):
    """RPC's perplexity consistency over every k-subset, as its reference code (compute_rpc.py, `wpc_evaluator`)
    scores one draw: per answer, a dict from completion to the set of its probabilities, merged across the
    answer's samples, so a completion drawn several times counts once; the largest sum wins, ties shared. A path's
    probability is the mean over its pool copies (equal copies: the stored value)."""
    idx = np.flatnonzero(valid)
    ok = {a: correct[idx[answer[idx] == a]].mean() for a in set(answer[idx]) - {-1}}
    path_prob = {p: float(np.mean(prob[idx[path[idx] == p]])) for p in set(path[idx])}
    total = 0.0
    subsets = list(itertools.combinations(idx, k))
    for sub in subsets:
        paths: dict = {}
        for i in sub:
            if answer[i] != -1:
                paths.setdefault(answer[i], {})[path[i]] = {path_prob[path[i]]}
        if not paths:
            continue
        sums = {a: sum(sum(v) for v in d.values()) for a, d in paths.items()}
        top = max(sums.values())
        total += np.mean([ok[a] for a, s in sums.items() if s >= top - 1e-9 * max(1.0, abs(top))])
    return total / len(subsets)


def test_a_path_drawn_three_times_counts_once():
    """X: one completion drawn three times (p = 0.5); Y: two different completions (p = 0.3 each). Summing every
    trace gives X 1.5 against 0.6; RPC sums distinct paths: X 0.5 against Y 0.6."""
    answer = np.array([[0, 0, 0, 1, 1]])
    correct = answer == 1
    logprob_mean = np.log([[0.5, 0.5, 0.5, 0.3, 0.3]])
    path = np.array([[0, 0, 0, 1, 2]])
    rpc = pool_from_arrays(correct, answer, logprob_mean=logprob_mean, path_id=path)
    assert selection_curves(rpc, None, [5], draws=4, n_boot=0)["perplexity_consistency"].mean[-1] == 1.0
    every_trace = pool_from_arrays(correct, answer, logprob_mean=logprob_mean)  # no path identity: all distinct
    assert selection_curves(every_trace, None, [5], draws=4, n_boot=0)["perplexity_consistency"].mean[-1] == 0.0


@pytest.mark.parametrize("seed, noise", [(0, 0.0), (1, 0.0), (2, 0.05)])
def test_perplexity_consistency_matches_rpc_over_every_k_subset_of_pools_with_duplicates(seed, noise):
    rng = np.random.default_rng(seed)
    n_q, width = 6, 8
    answer = rng.integers(-1, 3, (n_q, width))
    correct = answer == rng.integers(0, 3, (n_q, 1))
    # a few paths per answer, drawn repeatedly: path = (answer, variant); a variant's copies share a probability
    variant = rng.integers(0, 2, (n_q, width))
    path = (answer + 1) * 2 + variant
    path_lp = -rng.integers(1, 5, (n_q, 8)) / 4.0  # coarse: ties between answers' sums do occur
    logprob_mean = np.take_along_axis(path_lp, path, axis=1) + noise * rng.standard_normal((n_q, width))
    pool = pool_from_arrays(correct, answer, logprob_mean=logprob_mean, path_id=path)
    ks = [1, 2, 3, 5, 8]
    c = selection_curves(pool, None, ks, draws=3000, seed=7, confidence=0.999, n_boot=0)["perplexity_consistency"]
    for j, k in enumerate(ks):
        truth = np.mean(
            [
                _brute_rpc(pool.valid[q], pool.correct[q], pool.answer_id[q], path[q], np.exp(logprob_mean[q]), k)
                for q in range(n_q)
            ]
        )
        assert c.mc_low[j] - 1e-12 <= truth <= c.mc_high[j] + 1e-12, (k, truth, c.mean[j])
    assert c.mean[-1] == pytest.approx(truth, abs=1e-12)  # the whole pool: one vote, exact


def test_a_pool_without_signals_gets_no_confidence_rules():
    pool = pool_from_arrays(np.ones((2, 4), dtype=bool))
    assert set(selection_curves(pool, None, [2], draws=2, n_boot=0)) == {"majority"}


@pytest.mark.parametrize("shallow", [False, True])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_confidence_votes_reproduce_the_per_k_implementation_draw_for_draw(seed, full, shallow, monkeypatch):
    """Same seed, same permutations: every rule's (draw, question, k) value equals the per-k loop's, on pools of
    unequal size (or all whole), unanswered samples, unknown signals, duplicated paths and tied confidences. Shallow:
    the filtered vote reads most k in confidence order, and too shallow for many questions (read again whole)."""
    if shallow:
        monkeypatch.setattr(selection, "_DEPTH_SD", 0.0)
        monkeypatch.setattr(selection, "_DEPTH_SLACK", 0)
    rng = np.random.default_rng(seed)
    n_q, width = 7, 40
    valid = rng.random((n_q, width)) < 0.85
    valid[:, :12] = True  # every pool holds at least 12
    if full:
        valid[:] = True
    answer = np.where(valid, rng.integers(-1, 5, (n_q, width)), -1)
    answer_ok = rng.random((n_q, 5)) < 0.4
    conf = rng.integers(0, 24, (n_q, width)) / 8.0  # coarse: ties at the filter's threshold
    conf[rng.random((n_q, width)) < 0.1] = np.nan
    prob = np.exp(-rng.integers(1, 9, (n_q, width)) / 4.0)
    prob[rng.random((n_q, width)) < 0.1] = np.nan
    ks = np.array([1, 2, 3, 5, 8, 12] + ([30, 40] if full else []))
    for path_id in (None, rng.integers(0, 6, (n_q, width))):
        args = (valid, answer, answer_ok.astype(float), conf, prob, ks)
        new = selection.confidence_votes(*args, draws=5, seed=seed, path_id=path_id)
        ref = per_k_confidence_votes(*args, draws=5, seed=seed, path_id=path_id)
        for rule in RULES:
            np.testing.assert_allclose(new[rule], ref[rule], rtol=0, atol=1e-12, err_msg=rule)
