"""Selections mirrored in the URL, so a view is a shareable link: the runs / models / dataset header of the analysis
pages and the verifier choice."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from app_pages import _page as frame
from app_pages._store import default_runs, query, sample_groups
from backend.errors import SpecError
from backend.metrics.budget import X_UNITS


def _allowed_text(options: Sequence | None, cast: Callable, lo: float | None, hi: float | None) -> str:
    """What a URL parameter may hold, in words (a long option list is cut: the message stays one line)."""
    if options is not None:
        shown = [str(o) for o in options[:8]]
        more = f", ... ({len(options)} in all)" if len(options) > 8 else ""
        return ", ".join(shown) + more if shown else "nothing yet (no choices in this store)"
    kind = {int: "a whole number", float: "a number"}.get(cast, "text")
    if lo is not None and hi is not None:
        return f"{kind} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{kind} >= {lo:g}"
    return kind


def _parse_url_value(
    raw: str, cast: Callable, options: Sequence | None, lo: float | None, hi: float | None
) -> tuple[Any, str | None]:
    """(value, None), or (None, what is wrong with `raw`)."""
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return None, f"{raw!r} is not {_allowed_text(None, cast, None, None)}"
    if cast in (int, float):
        if not math.isfinite(value):
            return None, f"{raw!r} is not a finite number"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return None, f"{raw!r} is out of range"
    if options is not None and value not in options:
        return None, f"{raw!r} is not one of the choices"
    return value, None


def from_url(
    key: str,
    default: Any,
    *,
    options: Sequence | None = None,
    multi: bool = False,
    cast: Callable = str,
    lo: float | None = None,
    hi: float | None = None,
) -> None:
    """Seed a widget's state from the URL (or `default`) before it is created with `key=key`; values that are not
    in `options`, do not `cast` or fall outside [lo, hi] are dropped. Pair with `to_url`. A link that seeds the
    page with such a value gets one line naming the parameter and what it allows; the page shows the default."""
    current = st.session_state.get(key, None)
    if current is not None and _valid(current, options, multi, lo, hi):
        st.session_state[key] = current  # re-assert: a widget of another page may have owned this key
        return
    value, problems = None, []
    if key in st.query_params:
        raws = st.query_params.get_all(key) if multi else [st.query_params[key]]
        if multi and len(raws) == 1 and "," in raws[0]:
            raws = raws[0].split(",")
        parsed = [_parse_url_value(r, cast, options, lo, hi) for r in raws if not (multi and r == "")]
        problems = [p for _, p in parsed if p is not None]
        good = [v for v, p in parsed if p is None]
        value = good if multi else (good[0] if good else None)
    if value is None or (multi and not value):
        value = default
    if problems and current is None:  # a stale value of an earlier selection is reset quietly
        frame.render_error(
            SpecError(
                f"URL parameter {key}",
                "; ".join(problems) + f", ignored (showing {_shown(value)})",
                _allowed_text(options, cast, lo, hi),
            )
        )
    st.session_state[key] = value


def _valid(value: Any, options: Sequence | None, multi: bool, lo: float | None, hi: float | None) -> bool:
    values = value if multi else [value]
    if options is not None and not set(values) <= set(options):
        return False
    return all((lo is None or v >= lo) and (hi is None or v <= hi) for v in values if isinstance(v, (int, float)))


def _shown(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    """The header row of the analysis pages: runs, models, dataset (and x-axis unit), mirrored in the URL; the runs
    start from the comparable default (backend/run_selection.py) and a caption names what it left out. Returns (run_ids, [(model, strategy)], dataset or None, unit or None)."""
    groups = sample_groups(store)
    run_opts = sorted(groups["run_id"].unique())
    default = default_runs(store)
    from_url("runs", list(default.run_ids), options=run_opts, multi=True)
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    run_ids = c1.multiselect("Runs", run_opts, key="runs")
    left_out = default.caption(run_ids)
    if left_out:
        st.caption(left_out)
    sel = groups[groups["run_id"].isin(run_ids)]
    model_opts = sorted(sel["model"].unique())
    from_url("models", model_opts, options=model_opts, multi=True)
    models = c2.multiselect("Models", model_opts, key="models")
    dataset_opts = ["(all)"] + sorted(sel["dataset"].unique())
    from_url("dataset", "(all)", options=dataset_opts)
    dataset = c3.selectbox("Dataset", dataset_opts, key="dataset")
    unit = None
    if x_axis:
        from_url("x", "samples", options=list(X_UNITS))
        unit = c4.radio("x axis", list(X_UNITS), key="x", horizontal=True)
    to_url("runs", "models", "dataset", *(["x"] if x_axis else []))
    sel = sel[sel["model"].isin(models)]
    if dataset != "(all)":
        sel = sel[sel["dataset"] == dataset]
    combos = sel[["model", "strategy"]].drop_duplicates().sort_values(["model", "strategy"]).itertuples(index=False)
    if unit is not None and unit != "samples" and run_ids:
        unit = _drawable(store, tuple(sorted(run_ids)), unit)
    return tuple(sorted(run_ids)), list(combos), (None if dataset == "(all)" else dataset), unit


def _drawable(store, run_ids: tuple, unit: str) -> str:
    """`unit`, or the samples axis with one line naming the axis the runs cannot be drawn on and why."""
    from app_pages import _store as stored
    from app_pages import _views as views

    axes = views.axes(str(store.root), stored.fingerprint(store), run_ids)
    if not axes.can(unit):
        st.info(f"{axes.why(unit)}; drawn against samples instead.")
    return axes.usable(unit)


def verifier_choice(store, run_ids: Sequence[str], models: Sequence[str], key: str = "verifier") -> str | None:
    """The verifier whose scores drive best-of-N: one that scored samples of the selected runs and models (a
    verifier that scored only another run would leave the page nothing to select with)."""
    verifiers = query(
        store,
        "SELECT DISTINCT verifier FROM scores WHERE list_contains(?, run_id) AND list_contains(?, model) ORDER BY 1",
        [tuple(run_ids), tuple(models)],
    )["verifier"].tolist()
    opts = ["(none)"] + verifiers
    from_url(key, verifiers[0] if verifiers else "(none)", options=opts)
    v = st.selectbox("Verifier (best-of-N scores)", opts, key=key)
    to_url(key)
    return None if v == "(none)" else v
