"""The shared visual language (backend/visual.py): a configuration's colour depends on its name only, legend
labels fit in 40 characters without two configurations coinciding, ticks and money read as people write them."""

from __future__ import annotations

import itertools
import re

import pytest

from backend import visual as v

SEARCH = "qwen2.5-coder-0.5b-instruct · beam_search[max_rounds=6,max_tokens=48,n=4,width=2] · self_verify"
NAMES = [
    "majority",
    "best_of_n[prm]",
    "weighted_best_of_n[prm]",
    "deepconf_weighted",
    "deepconf_filtered",
    "perplexity_consistency",
    "beam_search[n=4,width=2] · self_verify",
    "beam_search[n=8,width=2] · self_verify",
    "dvts[n=4] · prm",
    "coverage (oracle)",
]


def test_a_configuration_has_one_colour_whatever_the_order_it_is_drawn_in():
    first = {n: v.config_color(n) for n in NAMES}
    again = {n: v.config_color(n) for n in reversed(NAMES)}
    assert first == again
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in first.values()), first


def test_colour_follows_the_family_and_families_differ():
    pool = ["majority", "best_of_n", "weighted_best_of_n", "deepconf_weighted", "deepconf_filtered"]
    pool += ["perplexity_consistency", "beam_search", "dvts"]
    colours = [v.config_color(n) for n in pool]
    assert len(set(colours)) == len(colours)  # the rules the issue saw in one blue are told apart by hue
    # a configuration of a family is the family's hue or a shade of it
    shades = {v.readable(v._shade(v.FAMILY_COLORS["beam_search"], s)) for s in v.SHADES}
    assert v.config_color("beam_search[n=4,width=2] · self_verify") in shades
    assert v.family("beam_search[n=4,width=2] · self_verify") == "beam_search"
    assert v.family("best_of_n[prm]") == "best_of_n"
    assert v.family("coverage (oracle)") == "coverage"


def test_an_unknown_family_still_gets_a_stable_palette_colour():
    c = v.config_color("my_new_search")
    assert c == v.config_color("my_new_search") and c in {v.readable(f) for f in v.FALLBACK}


def test_every_colour_shows_on_a_light_and_a_dark_page():
    names = [*v.FAMILY_COLORS, *NAMES, *(f"beam_search[n={n}]" for n in range(12)), "my_new_search"]
    names += [f"lookahead[n={n}] · prm" for n in range(12)] + [f"first_finish[n={n}]" for n in range(12)]
    for n in names:
        lum = v._luma(v.config_color(n))
        assert v.READABLE[0] <= lum <= v.READABLE[1], (n, v.config_color(n), lum)
    assert v.readable("#332288") != "#332288" and v.readable("#0072B2") == "#0072B2"


def test_deepconf_and_perplexity_rules_no_longer_look_identical():
    styles = {
        (v.config_color(n), v.config_dash(n))
        for n in ["deepconf_weighted", "deepconf_filtered", "perplexity_consistency"]
    }
    assert len(styles) == 3


def test_model_marker_is_stable():
    assert v.model_symbol("gemma-3-270m") == v.model_symbol("gemma-3-270m")
    assert v.model_symbol("gemma-3-270m") in v.MODEL_SYMBOLS


def test_short_labels_fit_and_keep_short_ones_whole():
    assert v.short_label("majority") == "majority"
    s = v.short_label(SEARCH)
    assert len(s) <= 40, s
    assert "beam_search" in s
    assert v.short_label(SEARCH) == s  # the same on every page


def test_shortening_keeps_the_strategy_and_abbreviates_before_it_cuts():
    assert v.short_label("qwen2.5-coder-0.5b-instruct · weighted_best_of_n[prm-synthetic]") == (
        "weighted_best_of_n[prm-synthetic]"  # the model's marker tells it; the verifier is kept whole
    )
    assert v.short_label("qwen2.5-coder-0.5b-instruct · coverage (oracle)") == "qwen2.5-coder-0.5b · coverage (oracle)"
    s = v.short_label("m · sequential_revisions[chain_length=2,chains=2,ratio=1:1]")
    assert s == "m · sequential_revisions[cl=2,c=2,r=1:1]"
    fulls = [
        f"a-very-long-model-name-{m} · {fam}[max_rounds={r},max_tokens={t},n=4,width=2] · self_verify"
        for m, fam, r, t in itertools.product(["x", "y"], ["beam_search", "dvts", "lookahead"], [4, 6], [48, 64])
    ]
    for f in fulls:
        s = v.short_label(f)
        assert len(s) <= 40 and v.family(f.split(" · ")[1]) in s, s


def test_a_chart_numbers_labels_that_coincide():
    import plotly.graph_objects as go

    from app_pages import _charts as charts

    fig = go.Figure()
    fulls = [f"m · beam_search[max_rounds={r},max_tokens=48,n=4,width=2] · self_verify" for r in (4, 6)]
    for f in [*fulls, "m · majority"]:
        s = charts.series(f.split(" · ", 1)[1], "m", name_model=False)
        fig.add_trace(go.Scatter(x=[1], y=[1], name=s.label, meta=s.meta))
    charts.style_figure(fig)
    names = [t.name for t in fig.data]
    assert len(set(names)) == 3 and names[2] == "majority" and all(len(n) <= 40 for n in names), names
    key = charts.key_table(fig)
    assert sorted(key["configuration"]) == sorted(fulls + ["m · majority"])
    assert set(key["legend"]) == set(names)


@pytest.mark.parametrize(
    ("x", "text"),
    [(1e11, "100 G"), (1e12, "1 T"), (2.5e12, "2.5 T"), (1.14e11, "114 G"), (999.9e9, "1 T"), (1, "1"), (0, "0")],
)
def test_engineering_notation(x, text):
    assert v.eng(x) == text


@pytest.mark.parametrize(
    ("usd", "text"),
    [(7.162e-05, "$0.000072"), (0.43, "$0.43"), (12.5, "$12.50"), (1234.4, "$1,234"), (0, "$0"), (float("inf"), "∞")],
)
def test_money_reads_as_dollars(usd, text):
    assert v.money(usd) == text
    assert "e" not in v.money(usd)


def test_money_scale_goes_per_thousand_answers_below_a_cent():
    assert v.money_scale([7e-5, 2e-4]) == (1000, "per 1,000 correct answers")
    assert v.money_scale([0.2, float("inf")]) == (1, "per correct answer")


def test_log_axes_are_labelled_at_decades_only():
    ax = v.decade_ticks(1, 64)
    assert ax["tickvals"] == [1.0, 10.0]
    assert ax["ticktext"] == ["1", "10"]
    assert -0.1 <= ax["range"][0] < 0  # nothing far left of k = 1
    flops = v.decade_ticks(1.1e11, 2.3e12, v.eng)
    assert flops["ticktext"] == ["100 G", "1 T"]  # one decade inside: stretched to the nearer one
    assert v.decade_ticks(4e11, 1.3e12, v.eng)["ticktext"] == ["100 G", "1 T"]
    assert v.decade_ticks(1, 8)["ticktext"] == ["1", "10"]  # never left of k = 1
    short = v.decade_ticks(1.1e11, 2.3e11, v.eng)  # less than a decade: widened to the decades around it
    assert short["ticktext"] == ["100 G", "1 T"]
    money = v.decade_ticks(3e-5, 2e-3, v.money_tick)
    assert money["ticktext"] == ["$0.0001", "$0.001"]
    assert v.decade_ticks(0.05, 200, v.money_tick)["ticktext"] == ["$0.1", "$1", "$10", "$100"]
