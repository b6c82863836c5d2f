"""The paired comparison of two configurations at matched compute, as the Strategies and Compute-optimal pages draw
it: the difference at every FLOP budget with its bootstrap interval, filled where the paired test of the mean
difference finds it significant and hollow where it does not, and the table with each budget's verdict (backend/metrics/paired.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _selection as sel
from backend import visual as look


def section(
    names: Sequence[str],
    compare: Callable[[str, str, str], pd.DataFrame],
    bins: Sequence[str],
    *,
    default_a: str,
    default_b: str,
    a_key: str = "pair_a",
    b_key: str = "pair_b",
    bin_key: str = "pair_bin",
) -> None:
    """Pickers for A, B and the questions (a difficulty bin or 'all'), mirrored in the URL under the three keys
    (a page that draws two sections gives each its own); `compare(a, b, bin)` gives one row per budget."""
    names = list(names)
    c1, c2, c3 = st.columns([3, 3, 1])
    sel.from_url(a_key, default_a, options=names)
    a = c1.selectbox("A", names, key=a_key)
    sel.from_url(b_key, default_b, options=names)
    b = c2.selectbox("B", names, key=b_key)
    bins = list(bins)
    sel.from_url(bin_key, "all", options=bins)
    which = c3.selectbox("Questions", bins, key=bin_key, help="a difficulty bin, or all questions")
    sel.to_url(a_key, b_key, bin_key)
    if a == b:
        st.info("Pick two different configurations to compare.")
        return
    df = compare(a, b, which)
    draw(df, f"{a_key}-difference")
    charts.table(df, f"{a_key}-table", height=min(400, 38 * (len(df) + 1)))


PAIRED_COLUMNS = ("budget_samples_equivalent", "questions_paired", "verdict", "difference_low_95", "difference_high_95")
"""The columns of a paired difference's customdata, as the chart's CSV names them."""


def draw(df: pd.DataFrame, name: str) -> None:
    ran = df[df["questions_paired"] > 0]
    if ran.empty:
        st.info("No question ran under both configurations at any budget.")
        return
    a, b = df["a"].iloc[0], df["b"].iloc[0]
    fig = go.Figure()
    fig.add_hline(y=0, line=dict(color=charts.REFERENCE, width=1))
    for significant, label, symbol in ((True, "significant", "circle"), (False, "not significant", "circle-open")):
        d = ran[ran["significant"] == significant]
        if d.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=d["budget_flops"],
                y=d["difference"],
                mode="markers",
                name=label,
                marker=dict(symbol=symbol, size=12, color=charts.color(0), line=dict(width=2, color=charts.color(0))),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=d["ci_high"] - d["difference"],
                    arrayminus=d["difference"] - d["ci_low"],
                ),
                meta={
                    "kind": "paired difference",
                    "customdata": [*PAIRED_COLUMNS],
                    "columns": {"a": a, "b": b, "significant": significant},
                },
                customdata=np.stack(
                    [d["budget_samples"], d["questions_paired"], d["verdict"], d["ci_low"], d["ci_high"]], -1
                ),
                hovertemplate="%{x:.3s}FLOPs (≈%{customdata[0]:.1f} samples) · %{customdata[1]} questions<br>"
                "A − B = %{y:.3f}<br>%{customdata[2]}<extra></extra>",
            )
        )
    charts.log_axis(fig, ran["budget_flops"], look.eng, title="budget (FLOPs per question)")
    fig.update_yaxes(title="accuracy difference A − B")
    fig.update_layout(meta=dict(x="budget_flops_per_question", y="accuracy_difference_a_minus_b"))
    charts.style_figure(fig, title=f"A − B at matched compute: {a} − {b}", height=380)
    charts.chart(fig, name)
    st.caption(
        "Paired over the questions both ran at each budget. Bars: 95% paired bootstrap interval. Filled: the paired "
        "test of the mean difference (McNemar's exact test on 0/1 outcomes; on expected accuracies the sign-flip "
        "permutation test, which weighs each question's margin) says the difference is real at 5%; hollow: it may "
        "be noise, and the table says roughly how many more questions would tell the two apart."
    )
