"""The Coverage page's forecasts and their bands (backend/metrics/fit.py), each checked against a brute-force
implementation written from its definition: the beta forecast's pass@k against numerical integration and Monte
Carlo of 1 − (1 − p)^k over the beta, its likelihood against the beta-binomial integral question by question, its
vectorised bootstrap refits against one scipy fit per resample; the power law's vectorised refits against
curve_fit per resample."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import comb

from backend.metrics.coverage import k_grid, pass_at_k_array
from backend.metrics.curve import bootstrap_counts
from backend.metrics.fit import (
    beta_binomial_loglik,
    beta_forecast_band,
    beta_pass_at_k,
    default_k_max,
    fit_beta_binomial,
    fit_beta_binomial_many,
    fit_power_law,
    fit_power_law_many,
    power_law_band,
)


def _population(alpha, beta, questions, n, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.beta(alpha, beta, questions)
    return np.full(questions, n), rng.binomial(n, p)


def _pass_at_k_by_quadrature(alpha, beta, k):
    """1 − ∫ (1 − p)^k Beta(p; α, β) dp, integrated numerically (split at 0.5: the density may be infinite at 0)."""
    f = lambda p: (1 - p) ** k * stats.beta.pdf(p, alpha, beta)  # noqa: E731
    near, _ = integrate.quad(f, 0, 0.5, limit=400, points=[1e-6, 1e-3])
    far, _ = integrate.quad(f, 0.5, 1, limit=400)
    return 1 - (near + far)


@pytest.mark.parametrize("alpha, beta", [(0.3, 2.0), (1.0, 1.0), (2.5, 0.7), (0.08, 5.0)])
@pytest.mark.parametrize("k", [1, 7, 64, 1000])
def test_beta_pass_at_k_is_the_integral_of_one_minus_failure(alpha, beta, k):
    assert beta_pass_at_k(alpha, beta, k) == pytest.approx(_pass_at_k_by_quadrature(alpha, beta, k), abs=1e-7)


def test_beta_pass_at_k_matches_monte_carlo():
    p = np.random.default_rng(3).beta(0.4, 3.0, 2_000_000)
    for k in (1, 10, 100):
        mc = 1 - np.mean((1 - p) ** k)
        assert beta_pass_at_k(0.4, 3.0, k) == pytest.approx(mc, abs=2e-3)
    assert beta_pass_at_k(0.4, 3.0, 1) == pytest.approx(0.4 / 3.4)  # pass@1 is the beta's mean


def test_beta_binomial_loglik_is_the_integral_per_question():
    n = np.array([8, 8, 8, 5, 12, 1])
    c = np.array([0, 3, 8, 0, 1, 1])
    alpha, beta = 0.6, 2.2
    brute = 0.0
    for ni, ci in zip(n, c):
        f = lambda p, ni=ni, ci=ci: comb(ni, ci) * p**ci * (1 - p) ** (ni - ci) * stats.beta.pdf(p, alpha, beta)  # noqa: E731
        brute += np.log(integrate.quad(f, 0, 1, limit=400, points=[1e-6, 1e-3])[0])
    assert beta_binomial_loglik(alpha, beta, n, c) == pytest.approx(brute, rel=1e-7)


def test_beta_fit_is_the_maximum_of_the_brute_force_likelihood():
    n, c = _population(0.5, 2.0, 60, 8, seed=1)
    fit = fit_beta_binomial(n, c)
    assert fit.loglik == pytest.approx(beta_binomial_loglik(fit.alpha, fit.beta, n, c))
    for da in (0.97, 1.03):
        for db in (0.97, 1.0, 1.03):
            assert beta_binomial_loglik(fit.alpha * da, fit.beta * db, n, c) < fit.loglik
    grid = np.geomspace(0.05, 20, 60)
    assert fit.loglik >= max(beta_binomial_loglik(a, b, n, c) for a in grid for b in grid)


@pytest.mark.parametrize("alpha, beta, n", [(0.3, 3.0, 8), (0.5, 1.5, 16), (2.0, 2.0, 4)])
def test_beta_fit_recovers_a_population_with_many_unsolved_questions(alpha, beta, n):
    ns, cs = _population(alpha, beta, 4000, n, seed=2)
    fit = fit_beta_binomial(ns, cs)
    assert fit.alpha == pytest.approx(alpha, rel=0.15)
    assert fit.beta == pytest.approx(beta, rel=0.2)
    assert fit.predict(1000) == pytest.approx(beta_pass_at_k(alpha, beta, 1000), abs=0.03)


def test_beta_fit_takes_questions_of_different_pool_sizes():
    rng = np.random.default_rng(4)
    p = rng.beta(0.7, 2.0, 3000)
    n = rng.integers(2, 30, 3000)
    fit = fit_beta_binomial(n, rng.binomial(n, p))
    assert fit.alpha == pytest.approx(0.7, rel=0.15) and fit.beta == pytest.approx(2.0, rel=0.2)


@pytest.mark.parametrize(
    "n, c, message",
    [([8], [1], "at least 2 questions"), ([8, 8], [9, 1], "0 <= c <= n"), ([8, 8], [1], "same length")],
)
def test_beta_fit_rejects_bad_counts(n, c, message):
    with pytest.raises(ValueError, match=message):
        fit_beta_binomial(n, c)


def test_vectorised_beta_refits_equal_one_scipy_fit_per_resample():
    n, c = _population(0.4, 2.5, 40, 8, seed=5)
    counts = bootstrap_counts(40, 25, seed=0)
    alpha, beta = fit_beta_binomial_many(n, c, counts)
    for row, a, b in zip(counts, alpha, beta):
        ref = fit_beta_binomial(np.repeat(n, row), np.repeat(c, row))  # the resample written out
        assert beta_binomial_loglik(a, b, np.repeat(n, row), np.repeat(c, row)) >= ref.loglik - 1e-6
        assert a == pytest.approx(ref.alpha, rel=1e-3) and b == pytest.approx(ref.beta, rel=1e-3)


def test_vectorised_power_law_refits_equal_curve_fit_per_resample():
    n, c = _population(0.4, 2.0, 50, 32, seed=6)
    ks = k_grid(32)
    per_q = pass_at_k_array(n[:, None], c[:, None], ks[None, :])
    boot = bootstrap_counts(50, 20, seed=0) @ per_q / 50
    a, b = fit_power_law_many(ks, boot)
    for row, ai, bi in zip(boot, a, b):
        ref = fit_power_law(ks, row)
        assert ai == pytest.approx(ref.a, rel=1e-4) and bi == pytest.approx(ref.b, rel=1e-4)
    assert np.isnan(fit_power_law_many(ks, np.zeros((1, ks.size)))[0]).all()  # no point with coverage > 0


def _loop_band(predictions, confidence=0.95):
    tail = (1 - confidence) / 2
    return np.quantile(predictions, [tail, 1 - tail], axis=0)


def test_power_law_band_is_the_percentile_of_per_resample_refits():
    n, c = _population(0.4, 2.0, 40, 16, seed=7)
    ks = k_grid(16)
    per_q = pass_at_k_array(n[:, None], c[:, None], ks[None, :])
    k_eval = np.array([16.0, 160.0, 1600.0])
    low, high = power_law_band(per_q, ks, k_eval, n_boot=60, seed=3)
    preds = [
        fit_power_law(ks, per_q[np.repeat(np.arange(40), row)].mean(axis=0)).predict(k_eval)
        for row in bootstrap_counts(40, 60, seed=3)
    ]
    ref_low, ref_high = _loop_band(np.array(preds))
    np.testing.assert_allclose(low, ref_low, atol=1e-5)
    np.testing.assert_allclose(high, ref_high, atol=1e-5)
    point = fit_power_law(ks, per_q.mean(axis=0)).predict(k_eval)
    assert np.all((low <= point) & (point <= high))


def test_beta_band_is_the_percentile_of_per_resample_refits_and_narrows_with_questions():
    n, c = _population(0.4, 2.0, 40, 8, seed=8)
    k_eval = np.array([8.0, 80.0])
    low, high = beta_forecast_band(n, c, k_eval, n_boot=40, seed=1)
    preds = [
        fit_beta_binomial(np.repeat(n, row), np.repeat(c, row)).predict(k_eval)
        for row in bootstrap_counts(40, 40, seed=1)
    ]
    ref_low, ref_high = _loop_band(np.array(preds))
    np.testing.assert_allclose(low, ref_low, atol=1e-4)
    np.testing.assert_allclose(high, ref_high, atol=1e-4)
    big_n, big_c = _population(0.4, 2.0, 640, 8, seed=8)
    big_low, big_high = beta_forecast_band(big_n, big_c, k_eval, n_boot=200)
    assert np.all(big_high - big_low < (high - low) / 2)  # 16× the questions: about a quarter of the width


def test_default_reach_is_ten_times_the_pool():
    assert default_k_max(64) == 640 and default_k_max(0) == 10


def test_backtest_scores_both_forecasts_against_the_whole_pool():
    from bench.forecast import backtest

    rng = np.random.default_rng(9)
    correct = rng.random((400, 64)) < rng.beta(0.5, 2.0, 400)[:, None]  # a beta population: the beta's home ground
    r = backtest(correct, fraction=8, n_boot=200)
    assert (r["fitted_on"], r["samples"], r["k"][0], r["k"][-1]) == (8, 64, 8, 64)
    c = correct.sum(axis=1)
    np.testing.assert_allclose(r["observed"], pass_at_k_array(64, c[:, None], r["k"][None, :]).mean(axis=0))
    first = fit_beta_binomial(np.full(400, 8), correct[:, :8].sum(axis=1))  # fitted on the first 8 samples only
    np.testing.assert_allclose(r["distributional"], first.predict(r["k"]))
    assert r["distributional_error"] < 0.02 and r["distributional_band_covers_n"] == 1
    assert r["distributional_error"] == pytest.approx(np.mean(np.abs(r["distributional"] - r["observed"])))
    short = backtest(correct[:, :16], fraction=8, n_boot=50)  # 2 samples to fit on: too few for a power law
    assert np.isnan(short["powerlaw_error"]) and np.isfinite(short["distributional_error"])
