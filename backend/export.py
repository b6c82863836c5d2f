"""Server-side export of what the dashboard draws: a chart as PNG, SVG or a self-contained HTML page, a table as
CSV or Parquet. Server-side so a figure for a paper does not depend on the browser's toolbar (which offers
PNG only) and so tests can check the bytes.

PNG and SVG go through kaleido, which drives the system's Chromium (Debian's `chromium` is found by itself:
docs/ARCHITECTURE.md, "Facts the design rests on"). Starting that browser costs seconds, so one kaleido server is started on first use and kept for
the life of the process; later images take a fraction of a second.

Every export holds what the chart shows and nothing else: traces hidden on the page (`visible` False or
"legendonly") are left out of the image, the HTML page and the CSV alike (`visible_figure`). A chart's CSV is read
from the figure itself (`figure_table`), so it cannot drift from what is drawn; the pages describe each trace in its
`meta` (the conventions are in `figure_table`'s docstring) and name the axes' columns with their units in the
layout's `meta`."""

from __future__ import annotations

import base64
import io
import re
import threading
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.errors import TtcError
from backend.visual import family

CHART_FORMATS: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml", "html": "text/html", "csv": "text/csv"}
TABLE_FORMATS: dict[str, str] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}

_kaleido_lock = threading.Lock()
_kaleido_started = False


class ExportError(TtcError):
    """A chart or table could not be exported (no Chromium for kaleido, unknown format)."""


def _ensure_kaleido() -> None:
    global _kaleido_started
    with _kaleido_lock:
        if _kaleido_started:
            return
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        _kaleido_started = True


def figure_image(
    fig: go.Figure, fmt: str, *, width: int = 1000, height: int | None = None, scale: float = 2.0
) -> bytes:
    """PNG (scaled for print) or SVG bytes of a plotly figure, as tall as the figure is drawn on the page."""
    height = height or fig.layout.height or 600
    if fmt not in ("png", "svg"):
        raise ExportError(f"format: {fmt!r} is not an image format; allowed: png, svg")
    try:
        _ensure_kaleido()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "kopts ignored when using a server": expected
            return fig.to_image(format=fmt, width=width, height=height, scale=scale if fmt == "png" else 1.0)
    except (RuntimeError, OSError) as e:
        raise ExportError(f"{fmt.upper()} export needs Chromium for kaleido (apt install chromium): {e}") from None


def figure_html(fig: go.Figure) -> bytes:
    """A standalone HTML page with plotly.js inlined: opens offline, interactive."""
    return fig.to_html(full_html=True, include_plotlyjs=True).encode("utf-8")


def table_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def table_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def export_figure(fig: go.Figure, fmt: str) -> bytes:
    """The chart's visible traces as `fmt`: an image, a standalone page, or the CSV of what is plotted."""
    fig = visible_figure(fig)
    if fmt == "html":
        return figure_html(fig)
    if fmt in ("png", "svg"):
        return figure_image(fig, fmt)
    if fmt == "csv":
        return table_csv(figure_table(fig))
    raise ExportError(f"format: {fmt!r} is unknown; allowed: {', '.join(CHART_FORMATS)}")


def export_table(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return table_csv(df)
    if fmt == "parquet":
        return table_parquet(df)
    raise ExportError(f"format: {fmt!r} is unknown; allowed: {', '.join(TABLE_FORMATS)}")


# ---- what a chart shows --------------------------------------------------------------------------------------
IDENTITY = ("series", "model", "configuration", "kind", "strategy", "rule", "verifier", "parameters")
"""The columns that say which line a CSV row belongs to, first in every chart's CSV."""


def hidden(trace) -> bool:
    """A trace the page does not draw: `visible` False, or "legendonly" (in the legend, greyed, not plotted)."""
    return trace.visible in (False, "legendonly")


def visible_figure(fig: go.Figure) -> go.Figure:
    """The figure without its hidden traces: an export draws what the page draws, not the lines the user hid."""
    if not any(hidden(t) for t in fig.data):
        return fig
    out = go.Figure(fig)
    out.data = [t for t in out.data if not hidden(t)]
    return out


def legend_entries(fig: go.Figure) -> dict[str, str]:
    """{legend label: the legend group it shows and hides}, in legend order (a curve and its band hide together,
    as a click on the legend does)."""
    out: dict[str, str] = {}
    for t in fig.data:
        if t.showlegend is not False and t.name:
            out.setdefault(t.name, t.legendgroup or t.name)
    return out


def hide_lines(fig: go.Figure, labels) -> go.Figure:
    """The figure with the lines of these legend labels greyed in the legend and not drawn ("legendonly"), their
    bands and markers with them; a click on the legend brings one back on the page."""
    entries = legend_entries(fig)
    groups = {entries[label] for label in labels if label in entries}
    if not groups:
        return fig
    out = go.Figure(fig)
    for t in out.data:
        if (t.legendgroup or t.name) in groups:
            t.visible = "legendonly"
    return out


def configuration_columns(configuration: str, kind: str = "pool") -> dict[str, str]:
    """strategy, rule, verifier and parameters of a configuration as the metrics name it: a pool's selection rule
    (`best_of_n[prm]`: rule best_of_n judged by the verifier prm; `coverage (oracle)`: the oracle, no verifier) or
    a search (`beam_search[n=4,width=2] · prm`: the strategy, the parameters that differ from its defaults, the
    verifier; backend.metrics.strategy_table.search_label)."""
    head, _, verifier = configuration.partition(" · ")
    strategy = family(head)
    inner = head[len(strategy) :].strip()
    bracket = inner[1:-1] if inner.startswith("[") and inner.endswith("]") else ""
    parameters = bracket if "=" in bracket else ""
    if bracket and not parameters and not verifier:  # `best_of_n[prm]`: the bracket names the verifier
        verifier = bracket
    rule = strategy if kind in ("pool", "forecast") else ""
    return dict(strategy=strategy, rule=rule, verifier=verifier, parameters=parameters)


def _slug(text: str | None, default: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", (text or "").lower()).strip("_")
    return slug or default


def _axis_columns(fig: go.Figure) -> dict[str, str]:
    """The CSV's names of x, y (and a heat map's z): the layout's meta where the page named them with their
    units, else the axis titles in snake case."""
    named = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    return {
        "x": named.get("x") or _slug(fig.layout.xaxis.title.text, "x"),
        "y": named.get("y") or _slug(fig.layout.yaxis.title.text, "y"),
        "z": named.get("z") or "z",
    }


def _array(v, dtype=object) -> np.ndarray:
    """A trace's data as an array, also when it arrives as plotly's base64 typed array (a figure read back from
    the JSON the browser gets: `{"dtype": "f8", "bdata": ..., "shape": ...}`)."""
    if isinstance(v, dict) and "bdata" in v:
        out = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        shape = v.get("shape")
        if shape:
            out = out.reshape([int(n) for n in str(shape).split(",")])
        return out.astype(dtype)
    return np.asarray([] if v is None else v, dtype=dtype)


def _values(v) -> np.ndarray:
    return _array(v).ravel()


def _trace_rows(t, cols: dict[str, str]) -> pd.DataFrame:
    meta = t.meta if isinstance(t.meta, dict) else {}
    if isinstance(t, go.Heatmap):
        z = _array(t.z)
        xs, ys = _values(t.x), _values(t.y)
        xs = xs if len(xs) == z.shape[1] else np.arange(z.shape[1])
        ys = ys if len(ys) == z.shape[0] else np.arange(z.shape[0])
        grid = {cols["y"]: np.repeat(ys, z.shape[1]), cols["x"]: np.tile(xs, z.shape[0]), cols["z"]: z.ravel()}
        if t.text is not None and np.asarray(t.text, dtype=object).shape == z.shape:
            grid[meta.get("text", "text")] = np.asarray(t.text, dtype=object).ravel()
        frame = pd.DataFrame(grid)
    else:
        x, y = _values(t.x), _values(t.y)
        if len(x) == 0 and len(y):  # a bar or line given only y: plotly draws it at 0, 1, ...
            x = np.arange(len(y))
        frame = pd.DataFrame({cols["x"]: x, cols["y"]: y})
    names = meta.get("customdata")
    if names and t.customdata is not None:
        data = _array(t.customdata).reshape(len(frame), -1)
        for i, name in enumerate(names[: data.shape[1]]):
            frame[name] = data[:, i]
    full = meta.get("full") or t.name or ""
    configuration = meta.get("configuration") or ""
    kind = meta.get("kind", "pool" if configuration else "")
    ident = dict(
        series=t.name or full,
        model=meta.get("model") or "",
        configuration=configuration,
        kind=kind,
        **(configuration_columns(configuration, kind) if configuration else {}),
    )
    for name, value in {**ident, **meta.get("columns", {})}.items():
        frame[name] = value
    return frame


def _band_columns(t, cols: dict[str, str]) -> pd.DataFrame:
    """A band trace (x forward then back; its upper edge then its lower) as x, low, high."""
    x, y = _array(t.x, float), _array(t.y, float)
    n = len(x) // 2
    return pd.DataFrame({cols["x"]: x[:n], f"{cols['y']}_low": y[n:][::-1], f"{cols['y']}_high": y[:n]})


def _reference_rows(fig: go.Figure, cols: dict[str, str]) -> list[pd.DataFrame]:
    """Named horizontal reference lines (a verifier's ceiling, the human expert): one row each."""
    out = []
    for shape in fig.layout.shapes or ():
        if shape.name and shape.type == "line" and shape.y0 == shape.y1 and str(shape.xref).endswith("domain"):
            out.append(pd.DataFrame({"series": [shape.name], "kind": ["reference"], cols["y"]: [shape.y0]}))
    return out


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """Every point the figure plots, one row each, with which line it belongs to: the chart's CSV.

    Conventions the pages follow (app_pages/_charts.py): a trace's `meta` holds `full` (its whole label),
    `configuration` and `model` (the identity columns, see `configuration_columns`), `kind` (pool, search,
    forecast, policy, ...), `customdata` (the names of the columns of its customdata, e.g. `k` or
    `budget_flops_per_question`), `columns` (constant columns of its rows) and `export: False` on decoration; a
    confidence band's meta is `{"band_of": <its line's full label>}` and becomes that line's `<y>_low` and `<y>_high`.
    The layout's `meta` names the x, y (and z) columns with their units (`flops_per_question`, `accuracy`,
    `usd_per_correct_answer`). Hidden traces are left out."""
    cols = _axis_columns(fig)
    bands: dict[str, pd.DataFrame] = {}
    frames = []
    for t in fig.data:
        meta = t.meta if isinstance(t.meta, dict) else {}
        if hidden(t) or meta.get("export") is False:
            continue
        if meta.get("band_of"):
            bands[meta["band_of"]] = _band_columns(t, cols)
            continue
        frames.append((meta.get("full") or t.name or "", _trace_rows(t, cols)))
    out = []
    for full, frame in frames:
        band = bands.get(full)
        if band is not None and cols["x"] in frame:
            frame = frame.assign(_x=pd.to_numeric(frame[cols["x"]], errors="coerce").astype(float))
            band = band.rename(columns={cols["x"]: "_x"})
            frame = frame.merge(band, on="_x", how="left").drop(columns=["_x"])
        out.append(frame)
    out += _reference_rows(fig, cols)
    if not out:
        return pd.DataFrame(columns=list(IDENTITY))
    table = pd.concat(out, ignore_index=True)
    first = [c for c in IDENTITY if c in table]
    return table[first + [c for c in table.columns if c not in first]]
