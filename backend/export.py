"""Server-side export of what the dashboard draws: a chart as PNG, SVG or a self-contained HTML page, a table as
CSV or Parquet. Server-side so a figure for a paper does not depend on the browser's toolbar (which offers
PNG only) and so tests can check the bytes.

PNG and SVG go through kaleido, which drives the system's Chromium (Debian's `chromium` is found by itself,
DESIGN.md §6). Starting that browser costs seconds, so one kaleido server is started on first use and kept for
the life of the process; later images take a fraction of a second."""

from __future__ import annotations

import io
import threading
import warnings

import pandas as pd
import plotly.graph_objects as go

from backend.errors import TtcError

CHART_FORMATS: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml", "html": "text/html"}
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
    if fmt == "html":
        return figure_html(fig)
    if fmt in ("png", "svg"):
        return figure_image(fig, fmt)
    raise ExportError(f"format: {fmt!r} is unknown; allowed: {', '.join(CHART_FORMATS)}")


def export_table(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return table_csv(df)
    if fmt == "parquet":
        return table_parquet(df)
    raise ExportError(f"format: {fmt!r} is unknown; allowed: {', '.join(TABLE_FORMATS)}")
