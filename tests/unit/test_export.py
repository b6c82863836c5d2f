"""A chart's exports hold what it shows: the CSV has one row per plotted point of every visible trace, with the
line's identity (searches included, not `sample` everywhere) and units in the column names; hidden lines are in
no export, images included; the Samples page's tree figure draws unscored nodes grey and shows node text."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from app_pages import _charts as charts
from backend import export
from backend import visual as look


def _strategies_like() -> go.Figure:
    """A pool rule with its band, the oracle, a search across three budgets, a search budget with no point, a
    verifier ceiling and a line the user hid: the kinds of trace the Strategies page draws."""
    fig = go.Figure()
    k = np.array([1, 2, 4])
    x = k * 1e11
    rule = charts.series("best_of_n[prm]", "m1")
    charts.add_band(fig, x, [0.1, 0.2, 0.3], [0.3, 0.4, 0.5], rule.color, rule.label, rule.full)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[0.2, 0.3, 0.4],
            name=rule.label,
            legendgroup=rule.full,
            meta={**rule.meta, "kind": "pool", "customdata": ["k"]},
            customdata=k,
        )
    )
    oracle = charts.series("coverage (oracle)", "m1")
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[0.5, 0.6, 0.7],
            name=oracle.label,
            legendgroup=oracle.full,
            meta={**oracle.meta, "kind": "pool", "customdata": ["k"]},
            customdata=k,
        )
    )
    search = charts.series("beam_search[n=4,width=2] · prm", "m1")
    fig.add_trace(
        go.Scatter(
            x=[0.9e11, 1.8e11],
            y=[0.25, 0.45],
            name=search.label,
            legendgroup=search.full,
            meta={**search.meta, "kind": "search", "customdata": ["budget_flops_per_question", "questions"]},
            customdata=np.stack([[1e11, 2e11], [10, 12]], -1),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[5e10],
            y=[0.02],
            name=f"{search.full} (no point)",
            legendgroup=search.full,
            showlegend=False,
            meta={
                **search.meta,
                "kind": "search",
                "customdata": ["budget_flops_per_question", "status"],
                "columns": {"accuracy": None},
            },
            customdata=np.stack([[5e10], ["unaffordable"]], -1).astype(object),
        )
    )
    hidden = charts.series("majority", "m1")
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[0.1, 0.1, 0.1],
            name=hidden.label,
            legendgroup=hidden.full,
            meta={**hidden.meta, "kind": "pool"},
            line=dict(color="#FF0000"),
            visible="legendonly",
        )
    )
    fig.add_hline(y=0.8, annotation_text="prm ceiling 0.80", name="m1: prm ceiling")
    fig.update_layout(meta=dict(x="flops_per_question", y="accuracy"))
    return fig


def test_csv_rows_are_the_visible_traces_points_with_their_identity_and_units():
    fig = _strategies_like()
    df = pd.read_csv(io.BytesIO(export.export_figure(fig, "csv")))
    drawn = [t for t in fig.data if not export.hidden(t) and not (t.meta or {}).get("band_of")]
    assert len(df) == sum(len(t.x) for t in drawn) + 1  # every point, and the ceiling
    assert list(df.columns[: len(export.IDENTITY)]) == list(export.IDENTITY)
    assert {"flops_per_question", "accuracy", "accuracy_low", "accuracy_high", "k"} <= set(df.columns)
    assert "majority" not in set(df["configuration"].dropna())  # the hidden line

    rule = df[df["configuration"] == "best_of_n[prm]"]
    assert rule[["kind", "strategy", "rule", "verifier", "model"]].drop_duplicates().values.tolist() == [
        ["pool", "best_of_n", "best_of_n", "prm", "m1"]
    ]
    assert rule["flops_per_question"].tolist() == [1e11, 2e11, 4e11] and rule["k"].tolist() == [1, 2, 4]
    assert rule["accuracy_low"].tolist() == [0.1, 0.2, 0.3] and rule["accuracy_high"].tolist() == [0.3, 0.4, 0.5]
    assert df.loc[df["configuration"] == "coverage (oracle)", "accuracy_low"].isna().all()  # no band drawn

    search = df[(df["kind"] == "search") & df["accuracy"].notna()]
    assert set(search["strategy"]) == {"beam_search"} and set(search["verifier"]) == {"prm"}
    assert set(search["parameters"]) == {"n=4,width=2"} and search["rule"].isna().all()
    assert search["budget_flops_per_question"].tolist() == [1e11, 2e11]
    assert search["flops_per_question"].tolist() == [0.9e11, 1.8e11] and search["questions"].tolist() == [10, 12]
    missing = df[df["status"].notna()]
    assert missing["status"].tolist() == ["unaffordable"] and missing["accuracy"].isna().all()
    assert missing["budget_flops_per_question"].tolist() == [5e10]

    ceiling = df[df["kind"] == "reference"]
    assert ceiling["series"].tolist() == ["m1: prm ceiling"] and ceiling["accuracy"].tolist() == [0.8]
    assert "sample" not in set(df["strategy"].dropna())


@pytest.mark.parametrize(
    "configuration, kind, expected",
    [
        ("coverage (oracle)", "pool", ("coverage", "coverage", "", "")),
        ("majority", "pool", ("majority", "majority", "", "")),
        ("best_of_n[prm]", "pool", ("best_of_n", "best_of_n", "prm", "")),
        ("weighted_best_of_n[self_verify]", "pool", ("weighted_best_of_n", "weighted_best_of_n", "self_verify", "")),
        ("beam_search[n=4,width=2] · prm", "search", ("beam_search", "", "prm", "n=4,width=2")),
        ("sequential_revisions[seq:par=1:1]", "search", ("sequential_revisions", "", "", "seq:par=1:1")),
        ("lookahead", "search", ("lookahead", "", "", "")),
    ],
)
def test_configuration_columns_read_the_metrics_names(configuration, kind, expected):
    got = export.configuration_columns(configuration, kind)
    assert (got["strategy"], got["rule"], got["verifier"], got["parameters"]) == expected


def test_unnamed_axes_take_their_titles_in_snake_case_and_a_heat_map_is_long():
    fig = go.Figure(
        go.Heatmap(z=[[0.1, 0.2], [0.3, 0.4]], x=["1 T", "2 T"], y=["bin 1", "bin 2"], text=[["a", "b"], ["c", "d"]])
    )
    fig.update_xaxes(title="budget (FLOPs per question)")
    fig.update_yaxes(title="difficulty")
    df = export.figure_table(fig)
    assert df[["difficulty", "budget_flops_per_question", "z", "text"]].values.tolist() == [
        ["bin 1", "1 T", 0.1, "a"],
        ["bin 1", "2 T", 0.2, "b"],
        ["bin 2", "1 T", 0.3, "c"],
        ["bin 2", "2 T", 0.4, "d"],
    ]


def test_csv_reads_a_figure_from_the_json_the_browser_gets():
    fig = _strategies_like()
    back = go.Figure(fig.to_plotly_json())  # numpy arrays travel base64-encoded
    pd.testing.assert_frame_equal(export.figure_table(back), export.figure_table(fig), check_dtype=False)


def test_hidden_lines_leave_the_figure_band_and_markers_with_them():
    fig = _strategies_like()
    entries = export.legend_entries(fig)
    search_label = next(label for label in entries if "beam_search" in label)
    hid = export.hide_lines(fig, [search_label, "no such line"])
    assert fig is not hid and not any(export.hidden(t) for t in fig.data if t.legendgroup == entries[search_label])
    gone = [t for t in hid.data if t.legendgroup == entries[search_label]]
    assert len(gone) == 2 and all(t.visible == "legendonly" for t in gone)  # the stars and the hollow star
    visible = export.visible_figure(hid)
    assert not any(export.hidden(t) for t in visible.data)
    assert len(visible.data) == len(fig.data) - 3  # the hidden majority, the search and its missing marker
    table = export.figure_table(hid)
    assert "beam_search" not in set(table["strategy"].dropna())


def test_html_export_leaves_out_hidden_lines():
    fig = _strategies_like()
    html = export.export_figure(fig, "html").decode()
    escaped = lambda text: json.dumps(text)[1:-1]  # noqa: E731 - as plotly writes a string into the page
    assert escaped("m1 · majority") not in html
    assert escaped("m1 · best_of_n[prm]") in html


def test_png_and_svg_draw_only_visible_lines():
    """Rendered by kaleido: the hidden line's red is nowhere in the SVG, and the PNG is the same picture as the
    figure without it."""
    fig = _strategies_like()
    try:
        svg = export.export_figure(fig, "svg").decode()
    except export.ExportError as e:
        pytest.skip(str(e))
    assert "rgb(255, 0, 0)" not in svg and "m1 · majority" not in svg
    assert "m1 · best_of_n[prm]" in svg
    shown = go.Figure(fig)
    shown.data = [t for t in shown.data if t.visible != "legendonly"]
    assert export.export_figure(fig, "png") == export.figure_image(shown, "png")


def test_search_tree_draws_an_unscored_root_grey_and_shows_node_text():
    nodes = pd.DataFrame(
        dict(
            node_id=[0, 1, 2, 3],
            parent_id=[-1, 0, 0, 1],
            depth=[0, 1, 1, 2],
            kind=["root", "step", "step", "answer"],
            step_score=[math.nan, 0.0, 0.8, 0.9],
            is_final=[False, False, False, True],
            selected=[False, False, False, True],
            answer=[None, None, None, "4"],
            correct=[None, None, None, True],
            step_text=["", "First add two and two, then check", "Try 3", "The answer is 4"],
        )
    )
    fig = charts.search_tree_figure(nodes)
    markers = [t for t in fig.data if t.mode and "markers" in t.mode]
    grey = next(t for t in markers if t.name == "no score")
    scored = next(t for t in markers if t.name == "scored")
    assert grey.marker.color == look.NEUTRAL and list(grey.customdata[:, 0]) == [0]
    assert list(scored.marker.color) == [0.0, 0.8, 0.9]  # a real 0 keeps its colour; the root is not one of them
    assert "text" in scored.mode and scored.text[0] == "First add two and…"
    assert scored.text[2] == "The answer is 4"
