"""Coverage: pass@k per model and strategy on a log axis, bootstrap bands, power-law fits extrapolated dashed."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _quality as data_quality
from app_pages import _selection as sel
from app_pages import _store as stored
from app_pages import _views as views

K_MAX = 10**9  # the farthest extrapolation offered (a number box holds whole numbers up to 2**53)


def body(store) -> None:
    run_ids, combos, dataset, unit = sel.pool_selection(store)
    c1, c2 = st.columns([1, 3])
    sel.from_url("fit", "on", options=["on", "off"])
    show_fit = c1.radio("Power-law fit", ["on", "off"], key="fit", horizontal=True) == "on"
    sel.from_url("kmax", 10_000, cast=int, lo=1, hi=K_MAX)
    k_max = int(
        c2.number_input("Extrapolate to k =", min_value=1, max_value=K_MAX, step=100, key="kmax", disabled=not show_fit)
    )
    sel.to_url("fit", "kmax")
    if not combos:
        st.info("Select at least one run and model.")
        return
    data_quality.strip(store, run_ids, [m for m, _ in combos], dataset)
    root, fp = str(store.root), stored.fingerprint(store)
    fig = go.Figure()
    tables, fits = [], []
    with st.spinner("computing coverage…"):
        for i, (model, strategy) in enumerate(combos):
            v = views.coverage_view(root, fp, run_ids, model, strategy, dataset, unit, k_max)
            label = f"{model} · {strategy}"
            c = charts.color(i)
            d = v.curve
            charts.add_band(fig, d["x"], d["low"], d["high"], c, label, label)
            fig.add_trace(
                go.Scatter(
                    x=d["x"],
                    y=d["mean"],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    line=dict(color=c, width=2.5),
                    customdata=d["k"],
                    hovertemplate="k=%{customdata}<br>coverage=%{y:.3f}<extra>" + label + "</extra>",
                )
            )
            if show_fit and v.fit_line is not None:
                f = v.fit_line
                inside, outside = f[~f["extrapolated"]], f[f["extrapolated"]]
                fig.add_trace(
                    go.Scatter(
                        x=inside["x"],
                        y=inside["coverage"],
                        mode="lines",
                        name=f"{label} fit",
                        legendgroup=label,
                        line=dict(color=c, width=1.2, dash="dot"),
                        showlegend=False,
                        hoverinfo="skip",
                    )
                )
                if len(outside):
                    fig.add_trace(
                        go.Scatter(
                            x=pd.concat([inside["x"].tail(1), outside["x"]]),
                            y=pd.concat([inside["coverage"].tail(1), outside["coverage"]]),
                            mode="lines",
                            name=f"{label} extrapolated",
                            legendgroup=label,
                            line=dict(color=c, width=2, dash="dash"),
                        )
                    )
            tables.append(d.assign(model=model, strategy=strategy).rename(columns={"mean": "coverage"}))
            fits.append(
                dict(
                    model=model,
                    strategy=strategy,
                    questions=v.n_questions,
                    pool=v.n_samples,
                    **(v.fit or dict(a=None, b=None, rmse=None, max_abs_error=None)),
                    note=v.fit_error or "",
                )
            )
    fig.update_xaxes(type="log", title=charts.x_label(unit))
    fig.update_yaxes(title="coverage (pass@k)", range=[0, 1.02])
    charts.style_figure(fig, title="Coverage: the chance that at least one of k samples is correct")
    charts.chart(fig, "coverage")
    st.caption(
        "Bands: 95% bootstrap over questions. Dotted: power-law fit log(coverage) = a·k^b; dashed: its extrapolation beyond the pool."
    )
    cols = ["model", "strategy", "k", "x", "coverage", "low", "high"]
    charts.table(pd.concat(tables, ignore_index=True)[cols], "coverage-table", height=240, expander="Coverage data")
    st.markdown("**Power-law fits**")
    charts.table(pd.DataFrame(fits), "coverage-fits")


frame.run_page("coverage", "Coverage", body, caption="pass@k per model and strategy, from the stored pools.")
