"""Selections mirrored in the URL, so a view is a shareable link: the runs / models / dataset header of the analysis
pages and the verifier choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from app_pages._store import query, sample_groups
from backend.metrics.budget import X_UNITS


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
    """The header row of the analysis pages: runs, models, dataset (and x-axis unit), mirrored in the URL.
    Returns (run_ids, [(model, strategy)], dataset or None, unit or None)."""
    groups = sample_groups(store)
    run_opts = sorted(groups["run_id"].unique())
    from_url("runs", run_opts, options=run_opts, multi=True)
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    run_ids = c1.multiselect("Runs", run_opts, key="runs")
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
    return tuple(sorted(run_ids)), list(combos), (None if dataset == "(all)" else dataset), unit


def verifier_choice(store, key: str = "verifier") -> str | None:
    verifiers = query(store, "SELECT DISTINCT verifier FROM scores ORDER BY 1")["verifier"].tolist()
    opts = ["(none)"] + verifiers
    from_url(key, verifiers[0] if verifiers else "(none)", options=opts)
    v = st.selectbox("Verifier (best-of-N scores)", opts, key=key)
    to_url(key)
    return None if v == "(none)" else v
