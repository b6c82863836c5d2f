import numpy as np
import pytest

from backend.ledger import (
    Ledger,
    ModelArch,
    decode_flops,
    matched_compute_multiplier,
    prefill_flops,
    sampling_flops,
    span_flops,
)

ARCH = ModelArch(n_params=494_032_768, n_layers=24, d_model=896)
GEMMA = ModelArch(n_params=268_098_176, n_layers=18, d_model=640, d_attn=4 * 256)  # attention wider than the model


def brute(arch, a, b):
    return sum(arch.token_flops(t) for t in range(a + 1, b + 1))


@pytest.mark.parametrize("arch", [ARCH, GEMMA])
@pytest.mark.parametrize("a,b", [(0, 1), (0, 57), (10, 200), (57, 153), (5, 5)])
def test_span_flops_matches_per_token_sum(arch, a, b):
    assert span_flops(arch, a, b) == pytest.approx(brute(arch, a, b), rel=1e-12)


def test_token_flops_counts_qk_and_av_at_the_attention_width():
    """f(t) = 2N + 2·(2·t·d_attn) per layer: QKᵀ and AV, each 2·t·d_attn, with d_attn = n_heads · head_dim."""
    t, n_layers = 300, 18
    qk = av = 2 * t * 1024  # 4 heads x 256
    assert GEMMA.token_flops(t) == 2 * GEMMA.n_params + n_layers * (qk + av)
    assert ARCH.attention_width == 896  # d_attn left at 0 (callers that predate it): d_model
    assert ModelArch.attention_width_of(4, 640, 256, 256) == 1024
    assert ModelArch.attention_width_of(14, 896) == 896  # no head size given: d_model / n_heads
    assert ModelArch.attention_width_of(8, 1024, 192, 128) == 8 * 160  # keys and values of different sizes: the mean
    with pytest.raises(ValueError, match="at least one attention head"):
        ModelArch.attention_width_of(0, 896)


def test_cached_prefix_is_not_recounted():
    assert prefill_flops(ARCH, 100, 100) == 0
    assert prefill_flops(ARCH, 100, 40) == pytest.approx(brute(ARCH, 40, 100))
    assert prefill_flops(ARCH, 100, 500) == 0  # cached tokens beyond the prompt are clipped


def test_pool_pays_one_prefill_and_n_decodes():
    n = np.array([1, 4, 16])
    got = sampling_flops(ARCH, 60, 100, n)
    expected = brute(ARCH, 0, 60) + n * brute(ARCH, 60, 160)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ledger_splits_generator_and_verifier():
    small = ModelArch(1000, 2, 16)
    led = Ledger(budget_flops=1e9)
    g = led.charge_generation(ARCH, 50, 10, 20)
    v = led.charge_verifier(small, 70, 0, 1)
    assert led.generator_flops == g == pytest.approx(prefill_flops(ARCH, 50, 10) + decode_flops(ARCH, 50, 20))
    assert led.verifier_flops == v
    assert led.total == g + v
    assert led.remaining() == pytest.approx(1e9 - g - v)
    assert led.prompt_tokens == 40 and led.completion_tokens == 20 and led.verifier_tokens == 71


def test_matched_compute_multiplier_follows_snell():
    # M + 3 (D_pretrain / D_inference) (M - 1) with R = D_inference / D_pretrain
    assert matched_compute_multiplier(14, 0.16) == pytest.approx(14 + 3 / 0.16 * 13)
    assert matched_compute_multiplier(1, 22) == 1
    with pytest.raises(ValueError, match="R"):
        matched_compute_multiplier(4, 0)
