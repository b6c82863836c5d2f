import numpy as np
import pytest
from scipy.optimize import nnls

from backend.ledger import ModelArch, decode_flops, prefill_flops, sampling_flops
from backend.metrics.budget import flops_for_samples, samples_for_flops, x_axis
from backend.metrics.coverage import coverage_curve, k_grid, pass_at_k
from backend.metrics.fit import fit_coverage_curve, fit_power_law
from backend.metrics.pools import pool_from_arrays


def _pool_from_power_law(a, b, n=256, questions=4000):
    """Correct counts per question whose mean pass@k follows exp(a·k^b): a non-negative mixture over c
    (NNLS on the exact hypergeometric pass@k), realised with `questions` questions."""
    ks = np.arange(1, n + 1)
    cs = np.arange(n + 1)
    failure = 1.0 - pass_at_k(n, cs[None, :], ks[:, None])
    lhs = np.vstack([failure, 1e3 * np.ones((1, n + 1))])  # weights sum to 1
    rhs = np.concatenate([1.0 - np.exp(a * ks**b), [1e3]])
    w, _ = nnls(lhs, rhs)
    counts = np.floor(w * questions).astype(int)
    counts[np.argsort(-(w * questions - counts))[: questions - counts.sum()]] += 1
    c_q = np.repeat(cs, counts)
    correct = np.arange(n)[None, :] < c_q[:, None]
    return pool_from_arrays(correct)


@pytest.mark.parametrize("a,b", [(-1.6, -0.4), (-1.2, -0.5), (-3.0, -0.25)])
def test_power_law_fit_recovers_known_parameters(a, b):
    pool = _pool_from_power_law(a, b)
    curve = coverage_curve(pool, k_grid(256, 12), n_boot=0)
    # the generated pool does follow the law (so the test is about the fit, not the generator)
    assert np.abs(curve.mean - np.exp(a * curve.k**b)).max() < 2e-3
    fit = fit_coverage_curve(curve)
    assert fit.a == pytest.approx(a, rel=0.05)
    assert fit.b == pytest.approx(b, rel=0.05)
    assert fit.rmse < 0.01
    ks = np.geomspace(1.0, 10_000.0, 50)  # far beyond the fitted k
    pred = fit.predict(ks)
    assert pred[-1] == pytest.approx(np.exp(fit.a * 10_000**fit.b))
    assert np.all(np.diff(pred) > 0)


def test_power_law_fit_reports_its_error_and_rejects_degenerate_input():
    k = k_grid(100)
    noisy = np.exp(-1.0 * k**-0.5) + np.where(np.arange(k.size) % 2, 0.02, -0.02)
    fit = fit_power_law(k, noisy)
    assert 0.005 < fit.rmse < 0.05 and fit.max_abs_error >= fit.rmse
    with pytest.raises(ValueError, match="at least 3 points with coverage > 0"):
        fit_power_law([1, 2, 4], [0.0, 0.0, 0.1])
    with pytest.raises(ValueError, match="coverage must lie in"):
        fit_power_law([1, 2, 4], [0.1, 0.2, 1.5])


ARCH = ModelArch(n_params=500_000_000, n_layers=24, d_model=896)
VERIFIER = ModelArch(n_params=1_500_000_000, n_layers=28, d_model=1536)


def test_budget_conversion_round_trips_through_the_ledger():
    n = np.array([1, 4, 16, 256])
    budget = flops_for_samples(ARCH, n, 120, 256)
    np.testing.assert_allclose(budget, sampling_flops(ARCH, 120, 256, n))
    assert samples_for_flops(ARCH, budget, 120, 256).tolist() == n.tolist()
    assert samples_for_flops(ARCH, budget - 1.0, 120, 256).tolist() == (n - 1).tolist()
    assert samples_for_flops(ARCH, 0.0, 120, 256) == 0  # not even the prefill
    with_verifier = flops_for_samples(ARCH, n, 120, 256, verifier=VERIFIER)
    np.testing.assert_allclose(with_verifier - budget, n * prefill_flops(VERIFIER, 376))
    assert samples_for_flops(ARCH, with_verifier, 120, 256, verifier=VERIFIER).tolist() == n.tolist()


def test_x_axis_in_samples_tokens_and_flops():
    correct = np.zeros((2, 4), dtype=bool)
    prompt = np.array([[100.0] * 4, [50.0] * 4])
    completion = np.array([[10.0, 20.0, 30.0, 40.0], [5.0] * 4])
    pool = pool_from_arrays(correct, prompt_tokens=prompt, completion_tokens=completion)
    ks = np.array([1, 4])
    assert x_axis(pool, ks, "samples").tolist() == [1.0, 4.0]
    # mean over questions of prompt once + k · mean completion
    assert x_axis(pool, ks, "tokens").tolist() == [((100 + 25) + (50 + 5)) / 2, ((100 + 100) + (50 + 20)) / 2]
    with pytest.raises(ValueError, match="pass arch="):
        x_axis(pool, ks, "flops")
    flops = x_axis(pool, ks, "flops", arch=ARCH)
    expected_q0 = prefill_flops(ARCH, 100) + ks * np.mean(decode_flops(ARCH, 100, completion[0]))
    expected_q1 = prefill_flops(ARCH, 50) + ks * decode_flops(ARCH, 50, 5)
    np.testing.assert_allclose(flops, (expected_q0 + expected_q1) / 2)
    with pytest.raises(ValueError, match="unit 'watts' is unknown; allowed: samples, tokens, flops"):
        x_axis(pool, ks, "watts")
