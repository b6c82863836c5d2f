"""Compute-optimal: per difficulty bin and budget the best configuration (chosen by 2-fold cross-validation),
compute-optimal against best-of-N with the efficiency ratio, and the FLOPs-matched comparison with a larger model."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend.metrics.compute_optimal import SNELL_R_VALUES, flops_matched_comparison
from app_pages import _common as ui
from app_pages import _views as views

BINS = ["oracle", "predicted"]


def body(store) -> None:
    run_ids, combos, task, _ = ui.pool_selection(store, x_axis=False)
    models = sorted({m for m, s in combos if s == "sample"})
    if not models:
        st.info("Select a run with sampling pools (strategy 'sample').")
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    ui.from_url("model", models[0], options=models)
    model = c1.selectbox("Model", models, key="model")
    ui.from_url("bins", "oracle", options=BINS)
    bins = c2.radio("Difficulty", BINS, key="bins", horizontal=True, help="oracle: pass@1 from the pool; predicted: mean verifier score (no ground truth)")
    with c3:
        verifier = ui.verifier_choice(store)
    ui.from_url("nbins", 5, options=[2, 3, 4, 5, 6, 8, 10], cast=int)
    n_bins = c4.selectbox("Bins", [2, 3, 4, 5, 6, 8, 10], key="nbins")
    ui.to_url("model", "bins", "nbins")
    if bins == "predicted" and verifier is None:
        st.warning("Predicted difficulty needs a verifier; using oracle bins.")
    root, fp = str(store.root), ui.fingerprint(store)
    with st.spinner("cross-validating configurations per bin…"):
        v = views.compute_optimal_view(root, fp, run_ids, model, task, verifier, bins, int(n_bins), 32, 0)
    r = v.result
    budgets = r.budgets.astype(int)

    # heat map: best configuration per bin × budget (picked on fold 0), coloured by its held-out accuracy
    names = r.chosen_names(0)
    short = np.vectorize(lambda s: s.split("[")[0].replace("weighted_best_of_n", "weighted").replace("best_of_n", "best-of-N") if s else "—")(names)
    fig = go.Figure(go.Heatmap(
        z=r.accuracy_by_bin, x=[str(b) for b in budgets], y=[f"bin {lv}" for lv in r.levels], text=short,
        texttemplate="%{text}<br>%{z:.2f}", textfont=dict(size=12), colorscale="Blues", zmin=0, zmax=1, colorbar=dict(title="accuracy"),
        hovertemplate="budget k=%{x}<br>%{y}<br>%{text}<br>held-out accuracy %{z:.3f}<extra></extra>",
    ))
    fig.update_xaxes(title="budget (samples per question)", type="category")
    fig.update_yaxes(title=f"difficulty ({v.bins}; bin 1 = easiest)", autorange="reversed")
    ui.style_figure(fig, title="Best configuration per difficulty bin and budget", height=420)
    ui.chart(fig, "compute-optimal-heatmap")

    # compute-optimal vs the baseline, with the efficiency ratio
    fig2 = go.Figure()
    fig2.add_trace(go.Scatter(x=budgets, y=r.accuracy, mode="lines+markers", name="compute-optimal (cross-validated)", line=dict(color=ui.color(0), width=3)))
    fig2.add_trace(go.Scatter(x=budgets, y=r.in_sample_accuracy, mode="lines", name="compute-optimal (in-sample, optimistic)", line=dict(color=ui.color(0), dash="dot")))
    fig2.add_trace(go.Scatter(x=budgets, y=r.baseline_accuracy, mode="lines+markers", name=r.baseline, line=dict(color=ui.color(1), width=2.5, dash="dash")))
    fig2.update_xaxes(type="log", title="budget (samples per question)")
    fig2.update_yaxes(title="accuracy", range=[0, 1.02])
    ui.style_figure(fig2, title=f"Compute-optimal against {r.baseline}")
    ui.chart(fig2, "compute-optimal-vs-baseline")
    eff = pd.DataFrame({
        "budget": budgets, "compute_optimal": r.accuracy, "in_sample": r.in_sample_accuracy, r.baseline: r.baseline_accuracy,
        "efficiency": r.efficiency, "efficiency_is_lower_bound": r.efficiency_is_lower_bound,
    })
    finite = eff["efficiency"][np.isfinite(eff["efficiency"])]
    m1, m2 = st.columns(2)
    m1.metric("Best efficiency vs " + r.baseline, f"{finite.max():.2f}×" if len(finite) else "—",
              help="budget the baseline needs / budget compute-optimal needs for the same accuracy")
    m2.metric("Questions per bin", ", ".join(str(n) for n in v.bin_sizes.values()))
    ui.table(eff, "compute-optimal-efficiency", expander="Accuracy and efficiency per budget")

    st.subheader("FLOPs-matched: more test-time compute, or a larger model?")
    others = [m for m in sorted({m for m, _ in combos}) if m != model]
    c1, c2, c3, c4 = st.columns(4)
    large = c1.selectbox("Larger model", ["(enter its accuracy)"] + others, key="large")
    if large in others:
        large_acc = views.pass_at_1(root, fp, run_ids, large, task)
        c2.metric("its pass@1", f"{large_acc:.3f}")
    else:
        large_acc = c2.number_input("Larger model's accuracy", 0.0, 1.0, 0.5, 0.05, key="large_acc")
    ui.from_url("M", 4.0, cast=float)
    size_ratio = c3.number_input("M = size ratio (larger / this)", min_value=1.0, step=0.5, key="M")
    ui.from_url("R", 0.79, cast=float)
    custom_r = c4.number_input("R = D_inference / D_pretrain", min_value=0.001, step=0.1, key="R", format="%.3f")
    ui.to_url("M", "R")
    r_values = sorted({*SNELL_R_VALUES, float(custom_r)})
    cmp = flops_matched_comparison(r, float(size_ratio), float(large_acc), r_values=r_values, large_model_budget=1.0)
    fig3 = go.Figure()
    labels = [f"R={x:g}" for x in cmp["R"]]
    fig3.add_trace(go.Bar(x=labels, y=cmp["small_model_accuracy"], name=f"{model} at matched compute", marker_color=ui.color(0)))
    fig3.add_trace(go.Bar(x=labels, y=cmp["large_model_accuracy"], name=f"{large if large in others else 'larger model'} (1 sample)", marker_color=ui.color(1)))
    fig3.update_yaxes(title="accuracy", range=[0, 1.02])
    fig3.update_xaxes(title="R (inference tokens / pretraining tokens)")
    ui.style_figure(fig3, title=f"Same total FLOPs: {model} with test-time compute vs a {size_ratio:g}× larger model")
    ui.chart(fig3, "flops-matched")
    st.caption("The small model gets M + 3·(M−1)/R times the larger model's inference compute (Snell et al. §7). "
               "Empty bars: the matched budget lies outside the measured pool.")
    ui.table(cmp, "flops-matched-table", expander="FLOPs-matched comparison data")


ui.run_page("compute_optimal", "Compute-optimal", body, caption="Snell et al. 2024: pick the best strategy per difficulty and budget, honestly (2-fold CV).")
