"""The data-quality strip every analysis page draws above its charts: per model × dataset (× bin where the page bins)
the share of samples cut at max_tokens, finished without an answer, or not graded, and a warning when one passes
the threshold (backend/metrics/quality.py computes all of it)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app_pages import _charts as charts
from app_pages._store import CACHE_TTL_S, cached_store, fingerprint
from backend.metrics.quality import THRESHOLD, DataQuality


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=64)
def _quality(
    root: str,
    fp: tuple,
    run_ids: tuple,
    models: tuple | None,
    dataset: str | None,
    bin_labels: tuple | None,
    bin_levels: tuple | None,
    threshold: float,
) -> DataQuality:
    from backend.metrics.quality import bins_by_key, data_quality

    con = cached_store(root).connect()
    try:
        bins = None
        if bin_labels is not None and models is not None and len(models) == 1:
            bins = bins_by_key(con, list(run_ids), models[0], bin_labels, bin_levels, dataset)
        return data_quality(con, list(run_ids), models=models, dataset=dataset, bins=bins, threshold=threshold)
    finally:
        con.close()


def strip(
    store,
    run_ids: Sequence[str],
    models: Sequence[str] | None = None,
    dataset: str | None = None,
    *,
    bins=None,
    threshold: float = THRESHOLD,
) -> None:
    """Draw the strip for the page's selection; `bins` = (question labels, levels) of one model's study (its
    table's `question_ids` and its bins' `level`) splits it per difficulty bin."""
    if not run_ids:
        return
    labels = levels = None
    if bins is not None:
        labels, levels = tuple(str(x) for x in bins[0]), tuple(int(x) for x in bins[1])
    q = _quality(
        str(store.root),
        fingerprint(store),
        tuple(sorted(run_ids)),
        None if models is None else tuple(sorted(set(models))),
        dataset,
        labels,
        levels,
        float(threshold),
    )
    if q.table.empty:
        return
    per = "model × dataset" + (" × difficulty bin" if bins is not None else "")
    st.html(f'<div class="ttc-quality" data-flagged="{int(q.flagged)}" style="display:none"></div>')
    st.caption(f":material/fact_check: {q.summary()} · a share above {q.threshold:.0%} warns")
    for w in q.warnings:
        st.warning(w, icon=":material/content_cut:")
    cols = ["model", "dataset", *(["bin"] if bins is not None else []), "samples", "cut_share", "no_answer_share"]
    cols += ["grade_error_share", "max_tokens", "finished_p95", "suggested_max_tokens"]
    charts.table(
        q.table[cols],
        "data-quality",
        expander=f"Data quality per {per}",
        column_config={
            c: st.column_config.NumberColumn(format="percent")
            for c in ("cut_share", "no_answer_share", "grade_error_share")
        },
    )
