"""Coverage: pass@k per model and strategy on a log axis, bootstrap bands, and two forecasts beyond the pool (the
power law and the beta distribution of per-question pass@1), each with its bootstrap band where it extrapolates."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _quality as data_quality
from app_pages import _report as study_report
from app_pages import _selection as sel
from app_pages import _store as stored
from app_pages import _views as views
from backend import visual as look
from backend.metrics.fit import EXTRAPOLATION_FACTOR, default_k_max

K_MAX = 10**9  # the farthest extrapolation offered (a number box holds whole numbers up to 2**53)
FORECAST_CAPTION = (
    "Bands: 95% bootstrap over questions (for the forecasts: questions resampled and each forecast refitted). "
    "Dashed: the power law log(coverage) = a·k^b (Brown et al. 2024), fitted to the curve; dash-dot: the beta "
    "forecast (Schaeffer et al. 2025), pass@k = 1 − B(α, β+k)/B(α, β) with per-question pass@1 ~ Beta(α, β) fitted "
    "to every question's (samples, correct) counts. The page trusts the beta forecast more: in the backtest "
    "(bench/forecast.py: fit on each question's first n/8 samples, predict pass@n) it came closer at k = n in "
    "every pool, and it reads every question's counts rather than a curve's shape, so it also forecasts from "
    "pools too small for a power law. A forecast band holds how much the fit moves with the question set, not how "
    "wrong the forecast is: in the backtest neither band held the observed pass@n. Both assume every question is "
    "solved eventually: where some never are, both overshoot."
)


def _forecast(fig: go.Figure, f: pd.DataFrame, s: charts.Series, kind: str, dash: str, alpha: float) -> None:
    """A forecast line over the whole k range (its curve's colour, a lighter weight), with its band beyond the
    pool."""
    name = f"{s.full}, {kind} forecast"
    label = look.short_label(f"{s.model} · {kind}" if s.model and s.label.startswith(s.model) else f"forecast: {kind}")
    outside = f[f["extrapolated"]]
    if len(outside):
        charts.add_band(
            fig, outside["x"], outside["low"], outside["high"], s.color, label, s.full, alpha=alpha, of=name
        )
    fig.add_trace(
        go.Scatter(
            x=f["x"],
            y=f["coverage"],
            mode="lines",
            name=label,
            legendgroup=s.full,
            meta={**s.meta, "full": name, "kind": "forecast", "customdata": ["k"], "columns": {"forecast": kind}},
            line=dict(color=s.color, width=1.6, dash=dash),
            customdata=f["k"],
            hovertemplate=name + "<br>k=%{customdata:.0f}<br>forecast=%{y:.3f}<extra></extra>",
        )
    )


def _at_k_max(v) -> dict:
    """Each forecast's value and 95% band at the farthest k drawn."""
    out: dict = {"k_max": None}
    for key, f in (("power_law", v.fit_line), ("beta", v.forecast_line)):
        last = None if f is None else f.iloc[-1]
        if last is not None:
            out["k_max"] = round(float(last["k"]))
        out[f"{key}_at_k_max"] = None if last is None else float(last["coverage"])
        out[f"{key}_band"] = None if last is None else f"[{last['low']:.3f}, {last['high']:.3f}]"
    return out


def body(store) -> None:
    run_ids, combos, dataset, unit = sel.pool_selection(store)
    c1, c2 = st.columns([1, 3])
    sel.from_url("fit", "on", options=["on", "off"])
    show_fit = c1.radio("Power-law fit", ["on", "off"], key="fit", horizontal=True) == "on"
    auto = default_k_max(
        views.largest_pool(str(store.root), stored.fingerprint(store), run_ids, tuple(combos), dataset)
    )
    if "_kmax_auto" in st.session_state and st.session_state.get("kmax") == st.session_state["_kmax_auto"]:
        st.session_state["kmax"] = auto  # not asked further: the default follows the selection
    st.session_state["_kmax_auto"] = auto
    sel.from_url("kmax", auto, cast=int, lo=1, hi=K_MAX)
    k_max = int(
        c2.number_input(
            "Extrapolate to k =",
            min_value=1,
            max_value=K_MAX,
            step=100,
            key="kmax",
            disabled=not show_fit,
            help=f"Default: {EXTRAPOLATION_FACTOR}× the largest pool. Further out the band is mostly the model's assumption.",
        )
    )
    sel.to_url("fit", "kmax")
    if not combos:
        st.info("Select at least one run and model.")
        return
    data_quality.strip(store, run_ids, [m for m, _ in combos], dataset)
    study_report.download_button(store, run_ids, [m for m, _ in combos])
    root, fp = str(store.root), stored.fingerprint(store)
    fig = go.Figure()
    tables, fits = [], []
    named = len({m for m, _ in combos}) > 1  # a legend names the model only where the chart has two
    with st.spinner("computing coverage…"):
        shown = [(m, s, views.coverage_view(root, fp, run_ids, m, s, dataset, unit, k_max)) for m, s in combos]
        alpha = charts.band_alpha(len(shown) * (3 if show_fit else 1))
        for model, strategy, v in shown:
            s = charts.series("coverage (oracle)" if strategy == "sample" else strategy, model, name_model=named)
            d = v.curve
            charts.add_band(fig, d["x"], d["low"], d["high"], s.color, s.label, s.full, alpha=alpha)
            fig.add_trace(
                go.Scatter(
                    x=d["x"],
                    y=d["mean"],
                    mode="lines+markers",
                    name=s.label,
                    legendgroup=s.full,
                    meta={**s.meta, "kind": "pool", "customdata": ["k"]},
                    line=dict(color=s.color, width=2.5),
                    marker=dict(symbol=s.symbol, size=6),
                    customdata=d["k"],
                    hovertemplate=s.full + "<br>k=%{customdata}<br>coverage=%{y:.3f}<extra></extra>",
                )
            )
            if show_fit:
                for f, kind, dash in ((v.fit_line, "power law", "dash"), (v.forecast_line, "beta", "dashdot")):
                    if f is not None:
                        _forecast(fig, f, s, kind, dash, alpha)
            tables.append(d.assign(model=model, strategy=strategy).rename(columns={"mean": "coverage"}))
            fits.append(
                dict(
                    model=model,
                    strategy=strategy,
                    questions=v.n_questions,
                    pool=v.n_samples,
                    **(v.fit or dict(a=None, b=None, rmse=None, max_abs_error=None)),
                    **(v.forecast or dict(alpha=None, beta=None, loglik=None)),
                    **_at_k_max(v),
                    note="; ".join(e for e in (v.fit_error, v.forecast_error) if e),
                )
            )
    xs = [np.asarray(t.x, float) for t in fig.data if t.x is not None]
    charts.log_axis(fig, np.concatenate(xs) if xs else [], charts.unit_format(unit), title=charts.x_label(unit))
    fig.update_yaxes(title="coverage (pass@k)", range=[0, 1.02])
    fig.update_layout(meta=dict(x=charts.x_column(unit), y="coverage"))
    charts.style_figure(fig, title="Coverage: the chance that at least one of k samples is correct")
    charts.chart(fig, "coverage")
    st.caption(FORECAST_CAPTION)
    cols = ["model", "strategy", "k", "x", "coverage", "low", "high"]
    charts.table(pd.concat(tables, ignore_index=True)[cols], "coverage-table", height=240, expander="Coverage data")
    st.markdown("**Forecasts** (power law a, b; beta α, β; each forecast's value and 95% band at the largest k shown)")
    charts.table(pd.DataFrame(fits), "coverage-fits")


frame.run_page(
    "coverage", "Coverage", body, caption="pass@k per model and strategy, from the stored pools.", share=True
)
