"""The one pricing home (backend/pricing.py): a pass, "1 sample" and a `budgets:` entry, each checked against a
per-token sum of the ledger's FLOPs per token, and every consumer asked what they cost: one number."""

import json

import numpy as np
import pandas as pd
import pytest

from backend.ledger import Ledger, ModelArch, sampling_flops
from backend.pricing import (
    budget_flops,
    budget_preview,
    one_sample_flops,
    pass_flops,
    prompt_tokens,
    sample_flops,
    samples_bought,
)

ARCH = ModelArch(n_params=494_032_768, n_layers=24, d_model=896)


def brute(arch, a, b):
    return sum(arch.token_flops(t) for t in range(a + 1, b + 1))


def test_a_pass_is_its_uncached_prompt_plus_its_generated_tokens():
    assert pass_flops(ARCH, 100, 30, 7) == pytest.approx(brute(ARCH, 30, 100) + brute(ARCH, 100, 107), rel=1e-12)
    assert pass_flops(ARCH, 100, 0, 0) == pytest.approx(brute(ARCH, 0, 100), rel=1e-12)


def test_the_ledger_charges_through_the_pricing_home():
    led = Ledger()
    assert led.charge_generation(ARCH, 80, 20, 40) == pass_flops(ARCH, 80, 20, 40)
    assert led.charge_verifier(ARCH, 90, 85, 1) == pass_flops(ARCH, 90, 85, 1)


def test_one_sample_is_the_mean_over_questions_of_prefill_plus_max_tokens_decode():
    prompts = [57, 80, 123]
    expected = np.mean([brute(ARCH, 0, p) + brute(ARCH, p, p + 256) for p in prompts])
    assert one_sample_flops(ARCH, prompts, 256) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(sample_flops(ARCH, np.array(prompts), 256), [brute(ARCH, 0, p) + brute(ARCH, p, p + 256) for p in prompts], rtol=1e-12)
    with pytest.raises(ValueError, match="at least one question"):
        one_sample_flops(ARCH, [], 256)


def test_budgets_in_samples_are_multiples_of_one_sample_and_flops_pass_through():
    one = one_sample_flops(ARCH, [60, 70], 100)
    assert budget_flops(ARCH, [1, 2.5], "samples", [60, 70], 100) == pytest.approx([one, 2.5 * one], rel=1e-15)
    assert budget_flops(ARCH, [1e12], "flops", [60, 70], 100) == [1e12]
    with pytest.raises(ValueError, match="allowed: samples, flops"):
        budget_flops(ARCH, [1], "tokens", [60], 100)


def test_samples_bought_is_the_inverse_of_a_pool_of_n():
    for n in [1, 3, 17, 64]:
        budget = sampling_flops(ARCH, 60, 100, n)
        assert samples_bought(ARCH, budget, 60, 100) == n
        assert samples_bought(ARCH, budget - 1, 60, 100) == n - 1
    assert samples_bought(ARCH, 0.0, 60, 100) == 0


def test_a_budget_of_one_sample_buys_one_sample():
    prompts = [50, 90]
    p = budget_preview(ARCH, [one_sample_flops(ARCH, prompts, 64) * k for k in (1, 2, 5)], prompts, 64)
    np.testing.assert_allclose(p.samples, [1, 2, 5], rtol=1e-12)
    # the prompt is read once: k samples' worth of budget buys k samples plus what the k-1 saved prefills pay for
    assert p.whole_samples.tolist() == [int((k * p.one_sample - p.prefill) // p.per_sample) for k in (1, 2, 5)]
    assert p.whole_samples[0] == 1
    assert p.prefill + p.per_sample == pytest.approx(p.one_sample, rel=1e-12)
