"""Cost-of-pass: expected money per correct answer for every model and selection rule, with editable prices, the
frontier and a human-expert line."""

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
from backend.metrics.axes import COST
from backend.metrics.cost import HUMAN_EXPERT, Price, cost_table, frontier, read_price

DEFAULT_PRICE = (0.05, 0.20)  # USD per 1M tokens in / out: a small hosted model
PRICE_COLUMNS = ("input USD / 1M tokens", "output USD / 1M tokens", "cached input USD / 1M tokens")


def _spec_prices(store) -> dict:
    """Prices written in the run specs (models[].price_in_per_m / price_out_per_m), if any."""
    import json

    out = {}
    for spec in stored.runs(store)["spec_json"].dropna():
        for m in json.loads(spec).get("models", []):
            if isinstance(m, dict) and m.get("price_in_per_m") is not None:
                out[m["name"]] = (m["price_in_per_m"], m.get("price_out_per_m") or m["price_in_per_m"])
    return out


def body(store) -> None:
    run_ids, combos, dataset, _ = sel.pool_selection(store, x_axis=False)
    if not combos:
        st.info("Select at least one run and model.")
        return
    data_quality.strip(store, run_ids, [m for m, _ in combos], dataset)
    models = sorted({m for m, _ in combos})
    prices, expert, verifier = _inputs(store, run_ids, models)
    study_report.download_button(store, run_ids, models, prices=prices, verifier=verifier)
    root, fp = str(store.root), stored.fingerprint(store)
    with st.spinner("computing success rates…"):
        rows = pd.concat(
            [views.cost_rows(root, fp, run_ids, m, s, dataset, verifier, 32) for m, s in combos], ignore_index=True
        )
    unpriced = {m: views.axes(root, fp, run_ids, m).why(COST) for m in models}
    unpriced = {m: why for m, why in unpriced.items() if why}
    if unpriced:
        _success_rates(rows[rows["model"].isin(list(unpriced))], unpriced)
        rows = rows[~rows["model"].isin(list(unpriced))]
        if rows.empty:
            return
    table = cost_table(rows, prices)
    best = frontier(table, human_expert_cost=expert)
    # grouped on a copy of the budget column: frontier(by=("budget",)) repeats "budget" in its output columns
    by_budget = frontier(table.assign(k=table["budget"]), by=("k",)).drop(columns=["k"])

    scale, per = look.money_scale(table["cost_of_pass"].astype(float))
    named = len(models) > 1  # a legend names the model only where the chart has two
    fig = go.Figure()
    for (model, rule), d in table.groupby(["model", "strategy"], sort=True):
        finite = d[np.isfinite(d["cost_of_pass"])]
        s = charts.series(rule, model, name_model=named)
        fig.add_trace(
            go.Scatter(
                x=finite["budget"],
                y=finite["cost_of_pass"] * scale,
                mode="lines+markers",
                name=s.label,
                legendgroup=s.full,
                meta={**s.meta, "kind": "pool", "customdata": ["usd_per_correct_answer", "success_rate"]},
                line=dict(color=s.color, dash=s.dash),
                marker=dict(symbol=s.symbol, size=6),
                customdata=np.stack([finite["cost_of_pass"], finite["success_rate"]], -1),
                text=[look.money(c) for c in finite["cost_of_pass"]],
                hovertemplate=s.full
                + "<br>k=%{x}<br>%{text} per correct answer<br>success %{customdata[1]:.3f}<extra></extra>",
            )
        )
    fin = by_budget[np.isfinite(by_budget["frontier_cost"].astype(float))]
    fig.add_trace(
        go.Scatter(
            x=fin["budget"],
            y=fin["frontier_cost"].astype(float) * scale,
            mode="lines",
            name="frontier (cheapest per budget)",
            line=dict(color=charts.REFERENCE, width=6),
            opacity=0.35,
            meta={"kind": "frontier", "customdata": ["usd_per_correct_answer"]},
            customdata=fin["frontier_cost"].astype(float),
            text=[look.money(c) for c in fin["frontier_cost"].astype(float)],
            hovertemplate="frontier at k=%{x}: %{text} per correct answer<extra></extra>",
        )
    )
    ys = np.asarray([y for t in fig.data for y in np.asarray(t.y, float)])
    ys = ys[np.isfinite(ys) & (ys > 0)]
    expert_note = f"human expert: {look.money(expert)} per correct answer"
    near = len(ys) == 0 or ys.min() / 10 <= expert * scale <= ys.max() * 10
    if expert > 0 and near:  # a line decades away would squash every curve into a strip
        ys = np.append(ys, expert * scale)
        fig.add_hline(
            y=expert * scale,
            line=dict(color=charts.REFERENCE, dash="longdash"),
            annotation_text=expert_note,
            name=f"human expert ({look.money(expert)} per correct answer)",
        )
    charts.log_axis(fig, table["budget"], title="samples per question (k)")
    charts.log_axis(fig, ys, look.money_tick, axis="y", title=f"cost-of-pass (USD {per})")
    y_column = "usd_per_correct_answer" if scale == 1 else f"usd_per_{scale}_correct_answers"
    fig.update_layout(meta=dict(x="samples_per_question", y=y_column))
    charts.style_figure(fig, title="Cost-of-pass: expected spend per correct answer", height=500)
    charts.chart(fig, "cost-of-pass")
    if expert > 0 and not near:
        st.caption(f"The {expert_note} lies more than a decade from every curve and is not drawn.")
    never = table[~np.isfinite(table["cost_of_pass"])]
    if len(never):
        st.caption(
            f"{len(never)} configuration(s) never pass (cost-of-pass = ∞) and are not drawn; they are in the table."
        )

    f = best.iloc[0]
    who = "nobody passes" if f["model"] is None else f"{f['model']} · {f['strategy']} at k={f['budget']}"
    m1, m2 = st.columns(2)
    cost = float(f["frontier_cost"])
    m1.metric(
        "Frontier cost-of-pass",
        look.money(cost),
        help=None if not np.isfinite(cost) or cost >= 0.01 else f"{look.money(cost * 1000)} per 1,000 correct answers",
    )
    m2.metric("Cheapest way to a correct answer", who if f["model"] != HUMAN_EXPERT else "hire the human expert")
    charts.table(
        table.sort_values("cost_of_pass"),
        "cost-of-pass-table",
        height=260,
        expander="Cost-of-pass of every configuration",
    )
    charts.table(by_budget, "cost-frontier", expander="Frontier per budget")


def _inputs(store, run_ids, models: list[str]) -> tuple[dict, float, str | None]:
    """The editable prices per model, the human expert's cost and the verifier for best-of-N."""
    c1, c2, c3 = st.columns([3, 2, 1])
    known = _spec_prices(store)
    prices_df = pd.DataFrame(
        {
            "model": models,
            PRICE_COLUMNS[0]: [known.get(m, DEFAULT_PRICE)[0] for m in models],
            PRICE_COLUMNS[1]: [known.get(m, DEFAULT_PRICE)[1] for m in models],
            # a prompt billed again to the same model: providers that cache prompts charge less for it
            PRICE_COLUMNS[2]: [known.get(m, DEFAULT_PRICE)[0] for m in models],
        }
    )
    with c1:
        st.markdown(
            "**Prices** (edit the cells). k samples of a question bill its prompt once in full and k − 1 times as "
            "cached input, and k completions out."
        )
        edited = st.data_editor(prices_df, hide_index=True, disabled=["model"], key="prices", width="stretch")
    sel.from_url("expert", 0.5, cast=float, lo=0)
    expert = c2.number_input(
        "Human expert, USD per correct answer", min_value=0.0, step=0.1, key="expert", format="%.4f"
    )
    with c3:
        verifier = sel.verifier_choice(store, run_ids, models)
    sel.to_url("expert")
    prices = {
        r["model"]: Price(*(read_price(r[col], f"Prices, {r['model']}, {col}") for col in PRICE_COLUMNS))
        for r in edited.to_dict("records")
    }
    return prices, expert, verifier


def _success_rates(rows: pd.DataFrame, why: dict[str, str]) -> None:
    """What the page can draw for models without token counts: each rule's success rate per k, and one line per
    reason it cannot price them."""
    for line in dict.fromkeys(why.values()):
        st.info(f"{line}; the success rate per k is drawn instead.")
    named = rows["model"].nunique() > 1
    fig = go.Figure()
    for (model, rule), d in rows.groupby(["model", "strategy"], sort=True):
        s = charts.series(rule, model, name_model=named)
        fig.add_trace(
            go.Scatter(
                x=d["budget"],
                y=d["success_rate"],
                mode="lines+markers",
                name=s.label,
                legendgroup=s.full,
                meta={**s.meta, "kind": "pool"},
                line=dict(color=s.color, dash=s.dash),
                marker=dict(symbol=s.symbol, size=6),
                hovertemplate=s.full + "<br>k=%{x}<br>success %{y:.3f}<extra></extra>",
            )
        )
    charts.log_axis(fig, rows["budget"], title="samples per question (k)")
    fig.update_yaxes(title="success rate", range=[0, 1.02])
    fig.update_layout(meta=dict(x="samples_per_question", y="success_rate"))
    charts.style_figure(fig, title="Success rate per k (no token counts to price)", height=420)
    charts.chart(fig, "cost-of-pass-unpriced")


frame.run_page(
    "cost_of_pass",
    "Cost-of-pass",
    body,
    caption="v = cost per attempt / success rate (Erol et al. 2025); ∞ when nothing passes.",
    share=True,
)
