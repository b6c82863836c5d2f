"""Strategies: accuracy against compute for several selection rules and models side by side, drawn against
coverage so the verifier's gap shows, with the ceiling an imperfect verifier puts on best-of-N."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _common as ui
from app_pages import _views as views

DASH = {"coverage (oracle)": "dot", "majority": "dash", "best_of_n": "solid", "weighted_best_of_n": "dashdot"}


def _rule(curve_name: str) -> str:
    return curve_name.split("[")[0]


def body(store) -> None:
    run_ids, combos, task, unit = ui.pool_selection(store)
    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        verifier = ui.verifier_choice(store)
    ui.from_url("threshold", 0.5, cast=float)
    threshold = c2.slider("Verifier accepts at score ≥", 0.0, 1.0, step=0.05, key="threshold")
    ui.from_url("draws", 32, options=[8, 16, 32, 64, 128], cast=int)
    draws = c3.select_slider("Resampling draws", [8, 16, 32, 64, 128], key="draws")
    ui.to_url("threshold", "draws")
    if not combos:
        st.info("Select at least one run and model.")
        return
    root, fp = str(store.root), ui.fingerprint(store)
    fig = go.Figure()
    frames, quality = [], []
    with st.spinner("computing selection curves…"):
        for i, (model, strategy) in enumerate(combos):
            v = views.selection_view(root, fp, run_ids, model, strategy, task, unit, verifier, threshold, draws)
            c = ui.color(i)
            for name, d in v.curves.groupby("curve", sort=False):
                label = f"{model} · {name}"
                if name != "coverage (oracle)":
                    ui.add_band(fig, d["x"], d["low"], d["high"], c, label, label)
                fig.add_trace(go.Scatter(
                    x=d["x"], y=d["mean"], mode="lines+markers", name=label, legendgroup=label,
                    line=dict(color=c, dash=DASH.get(_rule(name), "solid"), width=1.5 if name.startswith("coverage") else 2.5),
                    marker=dict(size=5), customdata=d["k"],
                    hovertemplate="k=%{customdata}<br>accuracy=%{y:.3f}<extra>" + label + "</extra>",
                ))
            frames.append(v.curves.assign(model=model, strategy=strategy))
            if not v.verifier_quality.empty:
                q = v.verifier_quality.assign(model=model)
                quality.append(q)
                if verifier is not None:
                    ceiling = float(q.loc[q["verifier"] == verifier, "ceiling"].iloc[0])
                    fig.add_hline(y=ceiling, line=dict(color=c, dash="longdash", width=1),
                                  annotation_text=f"{model}: {verifier} ceiling {ceiling:.2f}", annotation_position="bottom right")
            if unit != "samples":
                pts = views.search_points(store, run_ids, model)
                if not pts.empty:
                    fig.add_trace(go.Scatter(
                        x=pts[unit], y=pts["accuracy"], mode="markers", name=f"{model} · search",
                        marker=dict(color=c, symbol="star", size=12, line=dict(color="#222", width=1)),
                        text=pts["strategy"] + " " + pts["config"], hovertemplate="%{text}<br>accuracy=%{y:.3f}<extra></extra>",
                    ))
    fig.update_xaxes(type="log", title=ui.x_label(unit))
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    ui.style_figure(fig, title="Accuracy against compute: selection rules vs coverage", height=520)
    ui.chart(fig, "strategies")
    st.caption(
        "Dotted: coverage (an oracle picks any correct sample) — the gap to it is what the selection rule loses. "
        "Dashed: majority vote; solid: best-of-N by verifier score; dash-dot: weighted best-of-N. Long dashes: the "
        "imperfect-verifier ceiling (fLaws) that best-of-N approaches as N grows. Stars: search strategies."
    )
    cols = ["model", "strategy", "curve", "k", "x", "mean", "low", "high", "exact"]
    ui.table(pd.concat(frames, ignore_index=True)[cols].rename(columns={"mean": "accuracy"}), "strategies-table", height=240, expander="Curve data")
    if quality:
        st.markdown("**Verifier quality against the oracle grader**")
        table = pd.concat(quality, ignore_index=True)
        ui.table(table, "verifier-quality")
        st.caption(
            "AUROC: the chance that the verifier scores a correct sample above a wrong one (0.5 is a coin). "
            "False-positive rate, precision and the ceiling are at the acceptance threshold set above."
        )
        for row in table[table["auroc"] < 0.5].itertuples():
            st.warning(
                f"{row.verifier} on {row.model} scores wrong answers above correct ones (AUROC {row.auroc:.2f}): "
                "selecting by it does worse than picking at random; compare against majority vote."
            )


ui.run_page("strategies", "Strategies", body, caption="Selection rules and models side by side, against coverage.")
