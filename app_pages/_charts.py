"""Charts and tables with their exports: one look for every figure, and PNG / SVG / HTML and CSV / Parquet
download buttons under every chart and table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import export

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def style_figure(fig: go.Figure, *, title: str | None = None, height: int = 460) -> go.Figure:
    """One look for every chart: white background, readable in print, legend below."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        title=title,
        margin=dict(l=60, r=20, t=50 if title else 20, b=60),
        legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0),
        font=dict(size=13),
    )
    return fig


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-") or "export"


def chart(fig: go.Figure, name: str) -> None:
    """Draw a plotly figure with PNG / SVG / HTML download buttons (rendered server-side on click)."""
    st.plotly_chart(fig, width="stretch", key=f"chart_{name}", config={"displaylogo": False})
    _download_buttons(name, export.CHART_FORMATS, lambda fmt: export.export_figure(fig, fmt), spare_columns=1)


def _download_buttons(name: str, formats: dict, render, spare_columns: int) -> None:
    """One download button per format; `render(fmt)` builds the file on the server only when clicked."""
    cols = st.columns(len(formats) + spare_columns, gap="small", width=420)
    for col, (fmt, mime) in zip(cols, formats.items()):
        with col:
            st.download_button(
                fmt.upper(),
                data=lambda fmt=fmt: render(fmt),
                file_name=f"{_slug(name)}.{fmt}",
                mime=mime,
                key=f"dl_{name}_{fmt}",
                on_click="ignore",
                icon=":material/download:",
            )


def table(
    df: pd.DataFrame,
    name: str,
    *,
    height: int | None = None,
    column_config: dict | None = None,
    expander: str | None = None,
) -> None:
    """Draw a table with CSV / Parquet download buttons; with `expander`, inside a collapsed expander (the
    browser then skips drawing the grid until it is opened: secondary tables cost nothing on page load)."""
    if expander:
        with st.expander(expander, expanded=False, icon=":material/table:"):
            return table(df, name, height=height, column_config=column_config)
    kwargs = {"height": height} if height else {}
    st.dataframe(df, hide_index=True, width="stretch", column_config=column_config, key=f"table_{name}", **kwargs)
    _download_buttons(name, export.TABLE_FORMATS, lambda fmt: export.export_table(df, fmt), spare_columns=2)


def add_band(fig: go.Figure, x, low, high, color: str, name: str, legendgroup: str) -> None:
    """A translucent confidence band between low and high."""
    x = np.asarray(x, dtype=float)
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([np.asarray(high, float), np.asarray(low, float)[::-1]]),
            fill="toself",
            fillcolor=_rgba(color, 0.15),
            mode="lines",  # plotly adds markers to traces of < 20 points unless told otherwise
            line=dict(width=0),
            hoverinfo="skip",
            name=name,
            legendgroup=legendgroup,
            showlegend=False,
        )
    )


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def x_label(unit: str) -> str:
    return {"samples": "samples per question (k)", "tokens": "tokens per question", "flops": "FLOPs per question"}[unit]
