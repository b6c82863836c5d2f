"""Charts and tables with their exports: one look for every figure, and PNG / SVG / HTML and CSV / Parquet
download buttons under every chart and table.

The look itself — a configuration's colour, legend labels, ticks, money — lives in backend/visual.py, shared with
the HTML report. On the page a chart follows Streamlit's light or dark theme; its exports take the light theme's
colours and font, so the file looks like the page."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import export
from backend import visual as look

PALETTE = list(look.OKABE_ITO + look.TOL_MUTED)  # for things that are not configurations (bins, two bars)
REFERENCE = look.NEUTRAL  # reference lines and the compute-optimal policy: readable on light and dark
POLICY = "#6E6E6E"


@dataclass(frozen=True)
class Series:
    """How one configuration (of one model) is drawn, the same on every chart: `label` (≤ 40 characters) in the
    legend, `full` in the hover and the key table."""

    configuration: str
    model: str | None
    full: str
    label: str
    color: str
    dash: str
    symbol: str
    meta: dict = field(hash=False)


def series(configuration: str, model: str | None = None, *, name_model: bool = True) -> Series:
    """The look of `configuration` run by `model`: the model shown by its marker, and named in the label unless
    `name_model` is False (a chart of one model); the hover and key table always name it."""
    full = f"{model} · {configuration}" if model else configuration
    return Series(
        configuration,
        model,
        full,
        look.short_label(full if name_model else configuration),
        look.config_color(configuration),
        look.config_dash(configuration),
        look.model_symbol(model) if model else "circle",
        {"configuration": configuration, "model": model, "full": full},
    )


def style_figure(fig: go.Figure, *, title: str | None = None, height: int = 460) -> go.Figure:
    """One look for every chart: the legend beside the plot (short labels), axis titles set off from their tick
    labels with margins that grow to hold both, no plotly template (Streamlit's theme draws the page)."""
    fig.update_layout(
        height=height,
        title=title,
        margin=dict(l=10, r=10, t=50 if title else 20, b=10),
        legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02, font=dict(size=12)),
        font=dict(size=13),
    )
    fig.update_xaxes(automargin=True, title_standoff=12)
    fig.update_yaxes(automargin=True, title_standoff=10)
    number_coinciding_labels(fig)
    return fig


def number_coinciding_labels(fig: go.Figure) -> None:
    """Where shortening gave two configurations of one chart the same legend label, number them (in the order of
    their full names; the key table under the chart says which is which)."""
    fulls: dict[str, set] = {}
    for t in fig.data:
        if isinstance(t.meta, dict) and t.meta.get("full") and t.name:
            fulls.setdefault(t.name, set()).add(t.meta["full"])
    for name, group in fulls.items():
        if len(group) < 2:
            continue
        number = {f: i + 1 for i, f in enumerate(sorted(group))}
        stem = name if len(name) <= look.LABEL_MAX - 4 else name[: look.LABEL_MAX - 5] + "…"
        for t in fig.data:
            if t.name == name and isinstance(t.meta, dict) and t.meta.get("full") in number:
                t.name = f"{stem} ({number[t.meta['full']]})"


def log_axis(fig: go.Figure, values, fmt=look.count_label, axis: str = "x", **kw) -> None:
    """A log axis over `values` labelled at decades only (backend.visual.decade_ticks)."""
    v = np.asarray(pd.to_numeric(pd.Series(np.ravel(np.asarray(values, dtype=object))), errors="coerce"), float)
    v = v[np.isfinite(v) & (v > 0)]
    props = look.decade_ticks(float(v.min()), float(v.max()), fmt) if len(v) else dict(type="log")
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**props, **kw)


def unit_format(unit: str):
    """The tick format of an x unit: FLOPs in engineering notation, counts with separators."""
    return look.eng if unit == "flops" else look.count_label


def for_export(fig: go.Figure) -> go.Figure:
    """The figure as the page shows it in the light theme: Streamlit's background, text, grid and font."""
    out = go.Figure(copy.deepcopy(fig.to_dict()))
    out.update_layout(**look.LIGHT_LAYOUT)
    out.update_xaxes(gridcolor=look.LIGHT_GRID, zerolinecolor=look.LIGHT_GRID)
    out.update_yaxes(gridcolor=look.LIGHT_GRID, zerolinecolor=look.LIGHT_GRID)
    return out


def key_table(fig: go.Figure) -> pd.DataFrame:
    """Legend label -> full configuration for every trace whose label was shortened."""
    rows, seen = [], set()
    for t in fig.data:
        meta = t.meta if isinstance(t.meta, dict) else None
        if not meta or not meta.get("full") or t.showlegend is False or t.name in seen:
            continue
        seen.add(t.name)
        if t.name != meta["full"]:
            rows.append({"legend": t.name, "configuration": meta["full"]})
    return pd.DataFrame(rows, columns=["legend", "configuration"])


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-") or "export"


def chart(fig: go.Figure, name: str) -> None:
    """Draw a plotly figure with PNG / SVG / HTML / CSV download buttons (rendered server-side on click) and a
    "Lines" choice: a line hidden there is greyed in the legend and left out of every export, which hold what the
    page draws. (A click on the legend hides a line in the browser only; the toolbar's camera saves that view.)"""
    entries = export.legend_entries(fig)
    key = f"hide_{name}"
    chosen = [e for e in st.session_state.get(key, []) if e in entries]
    fig = export.hide_lines(fig, chosen)
    st.plotly_chart(
        fig,
        width="stretch",
        key=f"chart_{name}",
        config={"displaylogo": False, "toImageButtonOptions": {"filename": _slug(name), "scale": 2}},
        theme="streamlit",
    )
    cols = _download_buttons(
        name, export.CHART_FORMATS, lambda fmt: export.export_figure(for_export(fig), fmt), spare_columns=1
    )
    if entries:
        with cols[-1].popover("Lines", icon=":material/visibility:", help="Hide lines from the chart and its exports"):
            st.session_state[key] = chosen  # lines that left the chart (another selection) leave the choice
            st.multiselect(
                "Hidden lines",
                list(entries),
                key=key,
                help="Left out of the PNG, SVG, HTML and CSV too. A click on the legend hides a line in the browser "
                "only (the toolbar's camera saves that view).",
            )
    table = key_table(fig)
    if len(table):
        with st.expander("Legend key: the full configuration of each shortened label", icon=":material/key:"):
            st.dataframe(table, hide_index=True, width="stretch", key=f"key_{name}")


def _download_buttons(name: str, formats: dict, render, spare_columns: int) -> list:
    """One download button per format; `render(fmt)` builds the file on the server only when clicked. Returns the
    row's columns (the spare ones are last)."""
    cols = st.columns(len(formats) + spare_columns, gap="small", width=105 * (len(formats) + spare_columns))
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
    return cols


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


def add_band(
    fig: go.Figure,
    x,
    low,
    high,
    color: str,
    name: str,
    legendgroup: str,
    *,
    alpha: float = 0.1,
    of: str | None = None,
) -> None:
    """A confidence band between low and high, light enough to read the other curves through; it belongs to its
    curve's legend group, so hiding the curve hides the band. `of`: the full label of its curve (default: the
    legend group), whose CSV rows carry the band as low and high columns."""
    x = np.asarray(x, dtype=float)
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([np.asarray(high, float), np.asarray(low, float)[::-1]]),
            fill="toself",
            fillcolor=look.rgba(color, alpha),
            mode="lines",  # plotly adds markers to traces of < 20 points unless told otherwise
            line=dict(width=0),
            hoverinfo="skip",
            name=name,
            legendgroup=legendgroup,
            showlegend=False,
            meta={"band_of": of or legendgroup},
        )
    )


def band_alpha(n_bands: int) -> float:
    """Fainter bands as more overlap: five 95% bands must not merge into one block."""
    return 0.12 if n_bands <= 2 else max(0.04, 0.24 / n_bands)


def color(i: int) -> str:
    """A colour for the i-th thing that is not a configuration (a difficulty bin, one of two bars)."""
    return PALETTE[i % len(PALETTE)]


def ordered_color(i: int, n: int) -> str:
    """The i-th of n ordered things (difficulty bins, easy to hard) on viridis: ordered in lightness, readable
    under colour-vision deficiencies, and unlike any configuration's hue."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Viridis", [0.85 * i / max(n - 1, 1)])[0]


def x_column(unit: str) -> str:
    """The CSV column of an x unit, its unit in its name."""
    return {"samples": "samples_per_question", "tokens": "tokens_per_question", "flops": "flops_per_question"}[unit]


def x_label(unit: str) -> str:
    return {"samples": "samples per question (k)", "tokens": "tokens per question", "flops": "FLOPs per question"}[unit]


NODE_TEXT_MAX_NODES = 60  # beyond this many nodes the labels would overlap: the text is in the table below
NODE_TEXT_CHARS = 18


def _node_text(text, chars: int = NODE_TEXT_CHARS) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= chars else t[: chars - 1] + "…"


def search_tree_figure(nodes) -> go.Figure:
    """Nodes laid out by depth (x) and order within depth (y); edges parent → child; colour = step score, a node
    without one (the root, an unscored step) in neutral grey rather than as a score of 0; each node's text beside
    it on trees small enough to read."""
    pos = {}
    for depth, grp in nodes.groupby("depth"):
        n = len(grp)
        for j, node_id in enumerate(grp["node_id"]):
            pos[int(node_id)] = (int(depth), (j - (n - 1) / 2.0))
    ex, ey = [], []
    for r in nodes.itertuples():
        if int(r.parent_id) in pos:
            (x0, y0), (x1, y1) = pos[int(r.parent_id)], pos[int(r.node_id)]
            ex += [x0, x1, None]
            ey += [y0, y1, None]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ex,
            y=ey,
            mode="lines",
            line=dict(color="#bbbbbb", width=1.5),
            hoverinfo="skip",
            showlegend=False,
            meta={"export": False},
        )
    )
    score = nodes["step_score"].to_numpy(float)
    scored = np.isfinite(score)
    labelled = len(nodes) <= NODE_TEXT_MAX_NODES
    for part, colour in ((scored, None), (~scored, look.NEUTRAL)):
        d = nodes[part]
        if d.empty:
            continue
        selected = d["selected"].fillna(False).astype(bool)
        final = d["is_final"].fillna(False).astype(bool)
        hover = [
            f"node {r.node_id} (depth {r.depth})<br>"
            + ("no score" if r.step_score != r.step_score else f"score {r.step_score:.3f}")
            + f"<br>{(r.step_text or '')[:80]}"
            + (f"<br>answer {r.answer} ({'correct' if r.correct else 'wrong'})" if r.is_final else "")
            for r in d.itertuples()
        ]
        marker = dict(
            size=np.where(selected, 22, 14),
            symbol=np.where(selected, "star", np.where(final, "diamond", "circle")),
            line=dict(color="#333", width=1),
        )
        if colour is None:
            marker |= dict(
                color=d["step_score"].to_numpy(float),
                colorscale="Viridis",
                cmin=0,
                cmax=1,
                colorbar=dict(title="step score"),
            )
        else:
            marker |= dict(color=colour)
        fig.add_trace(
            go.Scatter(
                x=[pos[int(i)][0] for i in d["node_id"]],
                y=[pos[int(i)][1] for i in d["node_id"]],
                mode="markers+text" if labelled else "markers",
                text=[_node_text(t) for t in d["step_text"]] if labelled else None,
                textposition="middle right",
                textfont=dict(size=10),
                hovertext=hover,
                hoverinfo="text",
                name="scored" if colour is None else "no score",
                showlegend=colour is not None,
                marker=marker,
                meta={"kind": "node", "customdata": ["node_id", "step_score"]},
                customdata=np.stack([d["node_id"], d["step_score"]], -1),
            )
        )
    deepest = int(nodes["depth"].max()) if len(nodes) else 0
    fig.update_xaxes(title="depth (step)", dtick=1, range=[-0.4, deepest + (0.9 if labelled else 0.4)])
    fig.update_yaxes(visible=False)
    fig.update_layout(meta=dict(x="depth", y="position"))
    return style_figure(fig, title="Search tree (★ selected, ◆ final candidates, grey: no score)", height=420)
