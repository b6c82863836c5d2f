"""The shared look on the analysis pages (AppTest, populated store): every configuration drawn in the colour
backend.visual gives its name, the same on every page; legend labels of at most 40 characters with the full
configuration in the hover and the key table; log axes labelled at decades only; FLOPs in engineering notation
and money in dollars; exports in the light theme."""

from __future__ import annotations

import json
import math

import pytest
from streamlit.testing.v1 import AppTest

from backend import visual as look
from tests.ui.conftest import APP

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ANALYSIS = ["strategies", "coverage", "cost_of_pass", "compute_optimal"]


@pytest.fixture(scope="module")
def figures(populated_store) -> dict[str, list[dict]]:
    """Every page's plotly figures (as sent to the browser), with both models selected."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TTC_STORE", str(populated_store))
    out, keys = {}, {}
    try:
        at = AppTest.from_file(APP, default_timeout=180)
        at.run()
        for page in ANALYSIS:
            at.switch_page(f"app_pages/{page}.py").run()
            models = at.multiselect(key="models")
            models.set_value(models.options).run()
            assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
            out[page] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
            keys[page] = [d.value for d in at.dataframe if list(d.value.columns) == ["legend", "configuration"]]
    finally:
        mp.undo()
    out["_keys"] = keys  # type: ignore[assignment]
    return out


def _configured(figs):
    for fig in figs:
        for t in fig["data"]:
            meta = t.get("meta")
            if isinstance(meta, dict) and meta.get("configuration") and t.get("line", {}).get("color"):
                yield fig, t, meta


def test_every_configuration_has_its_one_colour_on_every_page(figures):
    seen: dict[str, set] = {}
    n = 0
    for page in ANALYSIS:
        for _, t, meta in _configured(figures[page]):
            if meta["configuration"].startswith("compute-optimal"):
                continue
            seen.setdefault(meta["configuration"], set()).add((page, t["line"]["color"]))
            assert t["line"]["color"] == look.config_color(meta["configuration"]), (page, meta)
            n += 1
    assert n > 10
    colours = {c for v in seen.values() for _, c in v}
    by_config = {k: {c for _, c in v} for k, v in seen.items()}
    assert all(len(c) == 1 for c in by_config.values()), by_config
    # the pool rules appear on three pages and keep their colour
    assert {p for p, _ in seen["majority"]} >= {"strategies", "cost_of_pass", "compute_optimal"}
    assert len(colours) >= 5  # rules and searches told apart by hue, not one blue


def test_legend_labels_are_short_and_the_full_name_is_in_the_hover(figures):
    for page in ANALYSIS:
        for fig in figures[page]:
            for t in fig["data"]:
                if t.get("showlegend") is False or not t.get("name"):
                    continue
                assert len(t["name"]) <= look.LABEL_MAX, (page, t["name"])
                meta = t.get("meta")
                if isinstance(meta, dict) and meta.get("full") and t.get("hovertemplate"):
                    assert meta["full"] in t["hovertemplate"], (page, t["name"])


def test_shortened_labels_are_in_a_key_table_under_the_chart(figures):
    shortened = {
        (t["name"], m["full"]) for page in ANALYSIS for _, t, m in _configured(figures[page]) if t["name"] != m["full"]
    }
    assert shortened  # two models' long names: the fixture's labels do get shortened
    keyed = {
        (r.legend, r.configuration) for tables in figures["_keys"].values() for d in tables for r in d.itertuples()
    }
    assert shortened <= keyed


def _axes(fig):
    for name, ax in fig["layout"].items():
        if name.startswith(("xaxis", "yaxis")) and isinstance(ax, dict) and ax.get("type") == "log":
            yield name, ax


def test_log_axes_are_labelled_at_decades_only(figures):
    n = 0
    for page in ANALYSIS:
        for fig in figures[page]:
            for name, ax in _axes(fig):
                n += 1
                assert ax.get("tickmode") == "array", (page, name)
                assert all(math.log10(v) == round(math.log10(v)) for v in ax["tickvals"]), (page, name, ax["tickvals"])
                lo, hi = ax["range"]
                shown = [float(d) for d in range(math.ceil(lo), math.floor(hi) + 1)]
                assert [round(math.log10(v)) for v in ax["tickvals"]] == shown, (page, name)  # each decade, labelled
    assert n >= 4


def test_flops_ticks_read_in_engineering_notation_and_money_in_dollars(figures):
    co = figures["compute_optimal"]
    flops_axes = [ax for fig in co for _, ax in _axes(fig) if "FLOPs" in str(ax.get("title", ""))]
    assert flops_axes and all(
        all(t.split()[-1] in {"k", "M", "G", "T", "P", "E"} for t in ax["ticktext"]) for ax in flops_axes
    ), [ax["ticktext"] for ax in flops_axes]
    (cost,) = [fig for fig in figures["cost_of_pass"] if "Cost-of-pass" in str(fig["layout"].get("title"))]
    y = cost["layout"]["yaxis"]
    assert all(t.startswith("$") and "e" not in t and "µ" not in t for t in y["ticktext"]), y["ticktext"]
    assert "USD" in str(y["title"]) and "correct answer" in str(y["title"])


def test_exports_take_the_light_theme_of_the_page():
    import plotly.graph_objects as go

    from app_pages import _charts as charts

    fig = charts.style_figure(go.Figure(go.Scatter(x=[1, 10], y=[0.1, 0.2])), title="t")
    out = charts.for_export(fig)
    assert out.layout.paper_bgcolor == "#FFFFFF" and out.layout.font.color == "#31333F"
    assert fig.layout.paper_bgcolor is None  # the page's figure keeps no colours of its own: Streamlit's theme draws it
    assert out.layout.height == fig.layout.height and out.data[0].x == fig.data[0].x
