"""What every page shares: the store (from $TTC_STORE), cached queries and metric results, the one place typed
errors are rendered, the stopped-worker banner, the empty-store panel, selections mirrored in the URL, and
export buttons under every chart and table.

Caching: a store only grows by new immutable shards, so the listing of shard files (count, newest mtime) is a
complete fingerprint of its content. Every cached query and metric takes that fingerprint as an argument:
results are reused until a worker writes a shard, then recomputed, with no explicit invalidation."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import export
from backend.errors import StoreError, TtcError
from backend.metrics.budget import X_UNITS
from store import Store
from store.schema import TABLES
from store.store import CATALOG_FILE, default_store_dir

CACHE_TTL_S = 3600
log = logging.getLogger("ttc.dashboard")

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


# ---- store access ---------------------------------------------------------------------------------------------
def store_dir() -> Path:
    return default_store_dir().expanduser().resolve()


@st.cache_resource(show_spinner=False)
def _open_store(root: str) -> Store:
    return Store.open(root, create=False)


def open_store(create: bool = False) -> Store | None:
    """The store at $TTC_STORE; None when there is none yet (unless `create`)."""
    root = store_dir()
    if not (root / CATALOG_FILE).is_file():
        if not create:
            return None
        Store.open(root, create=True)
    return _open_store(str(root))


def fingerprint(store: Store) -> tuple:
    """(file count, newest mtime) per table over the shard files: changes exactly when a shard is added."""
    out = []
    for table in TABLES:
        count, newest = 0, 0
        base = store.root / table
        if base.is_dir():
            for run in os.scandir(base):
                if not run.is_dir():
                    continue
                for f in os.scandir(run.path):
                    if f.name.endswith(".parquet") and not f.name.startswith("."):
                        count += 1
                        newest = max(newest, f.stat().st_mtime_ns)
        out.append((table, count, newest))
    return tuple(out)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=256)
def _cached_query(root: str, fp: tuple, sql: str, params: tuple) -> pd.DataFrame:
    return _open_store(root).query(sql, list(params))


def query(store: Store, sql: str, params: Sequence = ()) -> pd.DataFrame:
    """A read query over the shards, cached until the store changes."""
    return _cached_query(str(store.root), fingerprint(store), sql, tuple(params))


@st.cache_data(ttl=2, show_spinner=False)
def _runs(root: str) -> pd.DataFrame:
    return _open_store(root).runs_arrow().to_pandas()


def runs(store: Store) -> pd.DataFrame:
    """The catalog's runs (status changes without new shards, so a short TTL instead of the fingerprint)."""
    return _runs(str(store.root))


def sample_groups(store: Store) -> pd.DataFrame:
    """One row per (run, model, task, strategy) with sample and question counts: the choices pages offer."""
    return query(
        store,
        """SELECT run_id, model, task, strategy, count(*) AS samples, count(DISTINCT question_id) AS questions
           FROM samples GROUP BY ALL ORDER BY run_id, model, task, strategy""",
    )


def has_samples(store: Store | None) -> bool:
    return store is not None and fingerprint(store)[0][1] > 0


# ---- pools and metrics (cached; computed by backend.metrics) -----------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=16, ttl=CACHE_TTL_S)
def _pool(root: str, fp: tuple, run_ids: tuple, model: str, task: str | None, strategy: str | None):
    from backend.metrics import load_pool

    con = _open_store(root).connect()
    try:
        return load_pool(con, list(run_ids), model, task=task, strategy=strategy)
    finally:
        con.close()


# ---- errors, banners, empty store -----------------------------------------------------------------------------
def render_error(err: BaseException) -> None:
    """The one place a failure becomes text on a page: one line, never a traceback."""
    if isinstance(err, TtcError):
        st.error(str(err), icon=":material/error:")
    elif isinstance(err, ValueError):  # metrics refuse bad selections with a one-line ValueError
        st.error(f"cannot compute this view: {err}", icon=":material/error:")
    else:
        log.error("dashboard error\n%s", "".join(traceback.format_exception(err)))
        st.error(
            f"internal error ({type(err).__name__}): {err}. Details are in the dashboard's log.",
            icon=":material/bug_report:",
        )


def worker_banner(store: Store) -> None:
    """A clear banner when runs are waiting but no worker is alive, with a button that starts one."""
    from backend.jobs import live_workers, spawn_worker

    df = runs(store)
    waiting = df[df["status"].isin(["queued", "running"])] if not df.empty else df
    try:
        alive = live_workers(store)
    except Exception:  # noqa: BLE001 - an older catalog without the workers table
        alive = []
    if alive or waiting.empty:
        return
    with st.container(border=True):
        st.warning(
            f"**No worker is running.** {len(waiting)} run(s) are queued or marked running but nothing is "
            "generating. Start a worker here or with `ttc worker --store " + str(store.root) + "`.",
            icon=":material/warning:",
        )
        if st.button("Start worker", key="_start_worker_banner", icon=":material/play_arrow:"):
            spawn_worker(store.root)
            st.toast("worker started")
            time.sleep(1.0)
            st.rerun()


def how_to_start(store: Store | None) -> None:
    with st.container(border=True):
        st.subheader("This store has no samples yet")
        st.markdown(
            f"Store: `{store_dir()}` (set `TTC_STORE` or `ttc dashboard --store DIR` to use another).\n\n"
            "To get started:\n"
            "1. open **Run** in the sidebar, pick a model and a task suite, and queue a run; or\n"
            "2. from a shell: `ttc run examples/smoke.yaml --store "
            + str(store_dir())
            + "` (about a minute on CPU).\n\n"
            "Every page fills in as soon as the worker writes its first samples."
        )
        if st.button("Open the Run page", key="_goto_run"):
            st.switch_page("app_pages/run.py")


def ready_marker(name: str) -> None:
    """An invisible element the browser tests and bench wait for: the page script ran to its end."""
    st.html(f'<div class="ttc-page-ready" data-page="{name}" style="display:none"></div>')


def run_page(
    name: str, title: str, body: Callable[[Store], None], *, needs_samples: bool = True, caption: str = ""
) -> None:
    """Title, banner, empty-store panel, then `body(store)`; every exception ends as one st.error."""
    st.title(title)
    if caption:
        st.caption(caption)
    try:
        store = open_store()
        if store is not None:
            worker_banner(store)
        if needs_samples and not has_samples(store):
            how_to_start(store)
        else:
            body(store)
    except Exception as err:  # noqa: BLE001 - st.stop/st.rerun are BaseException and pass through
        render_error(err)
    finally:
        ready_marker(name)


# ---- selections in the URL ------------------------------------------------------------------------------------
def _url_value(key: str, multi: bool, cast: Callable) -> Any:
    if key not in st.query_params:
        return None
    try:
        if multi:
            raw = st.query_params.get_all(key)
            if len(raw) == 1 and "," in raw[0]:
                raw = raw[0].split(",")
            return [cast(v) for v in raw if v != ""]
        return cast(st.query_params[key])
    except (TypeError, ValueError):
        return None


def from_url(
    key: str, default: Any, *, options: Sequence | None = None, multi: bool = False, cast: Callable = str
) -> None:
    """Seed a widget's state from the URL (or `default`) before it is created with `key=key`; values not in
    `options` are dropped. Pair with `to_url`."""
    current = st.session_state.get(key, None)
    if current is not None and (options is None or (set(current) <= set(options) if multi else current in options)):
        st.session_state[key] = current  # re-assert: a widget of another page may have owned this key
        return
    value = _url_value(key, multi, cast)
    if options is not None and value is not None:
        value = [v for v in value if v in options] if multi else (value if value in options else None)
    if value is None or (multi and not value):
        value = default
    st.session_state[key] = value


def to_url(*keys: str) -> None:
    """Mirror widget values into the URL so the view is a shareable link."""
    for key in keys:
        value = st.session_state.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            st.query_params[key] = [str(v) for v in value]
        else:
            st.query_params[key] = str(value)


def pool_selection(store, *, x_axis: bool = True):
    """The header row of the analysis pages: runs, models, task (and x-axis unit), mirrored in the URL.
    Returns (run_ids, [(model, strategy)], task or None, unit or None)."""
    groups = sample_groups(store)
    run_opts = sorted(groups["run_id"].unique())
    from_url("runs", run_opts, options=run_opts, multi=True)
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    run_ids = c1.multiselect("Runs", run_opts, key="runs")
    sel = groups[groups["run_id"].isin(run_ids)]
    model_opts = sorted(sel["model"].unique())
    from_url("models", model_opts, options=model_opts, multi=True)
    models = c2.multiselect("Models", model_opts, key="models")
    task_opts = ["(all)"] + sorted(sel["task"].unique())
    from_url("task", "(all)", options=task_opts)
    task = c3.selectbox("Task", task_opts, key="task")
    unit = None
    if x_axis:
        from_url("x", "samples", options=list(X_UNITS))
        unit = c4.radio("x axis", list(X_UNITS), key="x", horizontal=True)
    to_url("runs", "models", "task", *(["x"] if x_axis else []))
    sel = sel[sel["model"].isin(models)]
    if task != "(all)":
        sel = sel[sel["task"] == task]
    combos = sel[["model", "strategy"]].drop_duplicates().sort_values(["model", "strategy"]).itertuples(index=False)
    return tuple(sorted(run_ids)), list(combos), (None if task == "(all)" else task), unit


def verifier_choice(store, key: str = "verifier") -> str | None:
    verifiers = query(store, "SELECT DISTINCT verifier FROM scores ORDER BY 1")["verifier"].tolist()
    opts = ["(none)"] + verifiers
    from_url(key, verifiers[0] if verifiers else "(none)", options=opts)
    v = st.selectbox("Verifier (best-of-N scores)", opts, key=key)
    to_url(key)
    return None if v == "(none)" else v


# ---- charts and tables with exports ---------------------------------------------------------------------------
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


__all__ = [
    "StoreError",
    "TtcError",
    "add_band",
    "chart",
    "color",
    "fingerprint",
    "from_url",
    "has_samples",
    "open_store",
    "query",
    "render_error",
    "run_page",
    "runs",
    "sample_groups",
    "store_dir",
    "style_figure",
    "table",
    "to_url",
    "x_label",
]
