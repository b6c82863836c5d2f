"""The Run form's budget list: every item a positive, finite number (an empty item is named, not skipped), and no
budget that would buy more samples per question than a spec may ask for, refused with what it would cost."""

from __future__ import annotations

import pytest

from backend.config import MAX_SAMPLES_PER_QUESTION, check_budget_samples, parse_budget_list
from backend.errors import SpecError
from backend.ledger import ModelArch, decode_flops, prefill_flops
from backend.pricing import budget_preview

ALLOWED = "allowed: comma-separated positive FLOP counts per question, such as 5e11, 1e12, 2e12"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("5e11, 1e12, 2e12", [5e11, 1e12, 2e12]),
        ("1e12;2e12", [1e12, 2e12]),
        ("  ", []),
        (" 3e12 ", [3e12]),
    ],
)
def test_good_budget_lists(raw, expected):
    assert parse_budget_list(raw) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ("1e12,,2e12", f"budgets: item 2 of '1e12,,2e12' is empty; {ALLOWED}"),
        ("1e12, 2e12,", f"budgets: item 3 of '1e12, 2e12,' is empty; {ALLOWED}"),
        (",1e12", f"budgets: item 1 of ',1e12' is empty; {ALLOWED}"),
        ("1e12, lots", f"budgets: item 2 ('lots') is not a number; {ALLOWED}"),
        ("1e12, 0", f"budgets: item 2 (0) is not a positive, finite number; {ALLOWED}"),
        ("-1e12", f"budgets: item 1 (-1e12) is not a positive, finite number; {ALLOWED}"),
        ("inf", f"budgets: item 1 (inf) is not a positive, finite number; {ALLOWED}"),
        ("nan", f"budgets: item 1 (nan) is not a positive, finite number; {ALLOWED}"),
    ],
)
def test_bad_budget_lists_name_the_item(raw, message):
    with pytest.raises(SpecError) as e:
        parse_budget_list(raw)
    assert str(e.value) == message


ARCH = ModelArch(n_params=300_000_000, n_layers=18, d_model=640)


def test_a_budget_that_buys_more_than_the_sample_limit_is_refused_with_its_cost():
    prompt, tokens = 40.0, 16
    pre = float(prefill_flops(ARCH, prompt))
    per = float(decode_flops(ARCH, prompt, tokens))
    at_cap = pre + MAX_SAMPLES_PER_QUESTION * per  # buys exactly the limit: allowed
    p = budget_preview(ARCH, [1e12, at_cap], [prompt], tokens)
    check_budget_samples(p.budgets, p.prefill, p.per_sample, "m")
    assert p.whole_samples[-1] == MAX_SAMPLES_PER_QUESTION
    p = budget_preview(ARCH, [1e12, 1e30, 1e25], [prompt], tokens)
    n = (1e30 - pre) / per  # brute force: one prefill, then samples of `per` each
    assert p.whole_samples[1] > MAX_SAMPLES_PER_QUESTION  # counted, not wrapped round to a negative int64
    with pytest.raises(SpecError) as e:
        check_budget_samples(p.budgets, p.prefill, p.per_sample, "m")
    assert str(e.value) == (
        f"budgets: 1e+30 FLOPs per question would buy {n:.3g} samples per question on m; allowed: at most "
        f"{MAX_SAMPLES_PER_QUESTION:,} samples per question (the samples_per_question limit), i.e. up to "
        f"{at_cap:.3g} FLOPs per question on m"
    )
    with pytest.raises(SpecError, match=r"^budgets: [\d.e+]+ FLOPs per question would buy 1\.1e\+05 samples"):
        check_budget_samples([at_cap * 1.1], pre, per, "m")  # just over the limit is refused too
