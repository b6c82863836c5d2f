"""The "Download report" button of the analysis pages: the page's runs and model as `ttc report -o` writes them
(backend/report_html.py), built only when the button is clicked."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import streamlit as st

from backend.errors import TtcError
from backend.metrics.cost import Price
from backend.metrics.study import ComputeOptimalStudy
from backend.report import OpenedStudy


def download_button(
    store,
    run_ids: Sequence[str] | None,
    models: Sequence[str],
    *,
    prices: Mapping[str, Price] | None = None,
    study: ComputeOptimalStudy | None = None,
    **study_arguments,
) -> None:
    """One button for the selection (run_ids None: the default runs, as `ttc report`); with several models, a
    choice of which model's study to report. `study`: the page's own study of these runs and model, built as the
    report builds it, so the click does not build it again."""
    models = list(dict.fromkeys(m for m in models if m))
    if not models:
        return
    c1, c2 = st.columns([1, 3])
    model = models[0] if len(models) == 1 else c2.selectbox("Report on model", models, key="report_model")
    runs, priced = (list(run_ids) if run_ids else None), dict(prices) if prices is not None else None

    def build() -> str:
        from backend.report_html import build_report

        con = store.connect()
        try:
            opened = None if study is None or runs is None else OpenedStudy(study, tuple(runs), ())
            return build_report(con, store.root, runs, model, prices=priced, opened=opened, **study_arguments)
        except (TtcError, ValueError) as e:  # the download still arrives, saying why there is no study
            return f"<!DOCTYPE html><html><body><p>No report: {html.escape(str(e))}</p></body></html>"
        finally:
            con.close()

    c1.download_button(
        "Download report",
        data=build,
        file_name=f"study-{model}.html",
        mime="text/html",
        key="download_report",
        on_click="ignore",
        icon=":material/description:",
        help="The study of these runs and this model as one self-contained HTML file (as `ttc report -o`); "
        "it opens offline and prints to PDF.",
    )
