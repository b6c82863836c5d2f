"""Strategies: accuracy against compute for several selection rules and models side by side, drawn against
coverage so the verifier's gap shows, with the ceiling an imperfect verifier puts on best-of-N, and every search
configuration as a curve across the FLOP budgets it ran with; any two configurations compared on the same
questions at matched FLOPs, with whether their difference is real (app_pages/_paired.py)."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _paired as paired
from app_pages import _quality as data_quality
from app_pages import _report as study_report
from app_pages import _selection as sel
from app_pages import _store as stored
from app_pages import _views as views
from backend.metrics.confidence import available_rules


def _rule(curve_name: str) -> str:
    """A curve's rule family (the filter's unit): its name before any bracketed parameters."""
    return curve_name.split("[")[0]


# Why a search configuration has no point at a budget (the table's statuses), drawn as a hollow star there. (A page
# script's bare string would be drawn on the page by Streamlit's magic: comments, not attribute docstrings, here.)
SEARCH_MISSING = {
    "unaffordable": "unaffordable: the budget paid no round",
    "over_budget": "over budget: spent more than its cap",
}

# The columns of a search star's customdata, as its CSV rows name them: budget and spend in FLOPs per question and
# in the pool's average samples' FLOPs, and the questions the point averages over.
SEARCH_COLUMNS = [
    "budget_flops_per_question",
    "spent_flops_per_question",
    "budget_samples_equivalent",
    "questions",
    "of_questions",
    "spent_samples_equivalent",
]


def _families(views_of, searches) -> list[str]:
    """Every rule family and search strategy on the chart, in drawing order: what the filter offers."""
    names = [_rule(n) for v in views_of for n in v.curves["curve"].unique()]
    names += [s for sc in searches for s in sc["strategy"].unique()]
    return list(dict.fromkeys(names))


def _family_filter(views_of, searches) -> set[str]:
    """The configurations shown, by rule family or search strategy (all by default), kept in the URL."""
    options = _families(views_of, searches)
    sel.from_url("families", options, options=options, multi=True)
    chosen = st.multiselect(
        "Configurations",
        options,
        key="families",
        help="selection rules (coverage, majority, best-of-N, …) and search strategies to draw; the tables below "
        "keep every configuration",
    )
    sel.to_url("families")
    return set(chosen)


def _missing_marker(d: pd.DataFrame, unit: str, s: charts.Series) -> go.Scatter | None:
    """A hollow star at each budget where a search configuration has no point because no question could afford it
    (or it broke its cap), on the x axis at the budget itself and at the bottom of the plot, so a configuration
    that never fits still shows on the chart, with why in the hover. The tokens axis has no place for a budget."""
    x_of_budget = {"flops": d["budget_flops"], "samples": d["budget_samples"]}.get(unit)
    if x_of_budget is None:
        return None
    gone = d["questions"] == 0
    why = pd.Series("", index=d.index)
    for status, text in SEARCH_MISSING.items():
        if status in d:
            why = why.where((why != "") | ~(d[status] > 0), text)
    gone &= why != ""
    if not gone.any():
        return None
    label, color = s.full, s.color
    return go.Scatter(
        x=x_of_budget[gone],
        y=np.full(int(gone.sum()), 0.02),
        mode="markers",
        name=f"{label} (no point)",
        legendgroup=label,
        showlegend=False,
        marker=dict(symbol="star-open", size=12, color=color, line=dict(width=1.5)),
        # drawn at the bottom of the plot: in the CSV the row has the budget and why, and no accuracy
        meta={
            **s.meta,
            "kind": "search",
            "customdata": ["budget_flops_per_question", "status"],
            "columns": {"accuracy": None},
        },
        customdata=np.stack([d["budget_flops"][gone], why[gone]], -1),
        hovertemplate=label + "<br>budget %{customdata[0]:.3g} FLOPs per question<br>%{customdata[1]}<extra></extra>",
    )


def body(store) -> None:
    run_ids, combos, dataset, unit = sel.pool_selection(store)
    verifier, threshold, draws = _controls(store, run_ids, [m for m, _ in combos])
    if not combos:
        st.info("Select at least one run and model.")
        return
    data_quality.strip(store, run_ids, [m for m, _ in combos], dataset)
    study_report.download_button(store, run_ids, [m for m, _ in combos], verifier=verifier)
    root, fp = str(store.root), stored.fingerprint(store)
    with st.spinner("computing selection curves…"):
        views_of = [
            views.selection_view(root, fp, run_ids, model, strategy, dataset, unit, verifier, threshold, draws)
            for model, strategy in combos
        ]
    searches = []
    with st.spinner("reading search configurations…"):
        for model in sorted({m for m, s in combos if s == "sample"}):  # a search table stands on the model's pool
            sc = views.search_curves(root, fp, run_ids, model, dataset, verifier)
            if not sc.empty:
                searches.append(sc.assign(model=model))
    shown = _family_filter(views_of, searches)
    fig = go.Figure()
    named = len({m for m, _ in combos}) > 1  # a legend names the model only where the chart has two
    frames, quality = _draw_rules(fig, combos, views_of, shown, named, verifier)
    _draw_searches(fig, searches, shown, named, unit)
    _show_chart(fig, unit)
    cols = ["model", "strategy", "curve", "k", "x", "mean", "low", "high", "exact"]
    charts.table(
        pd.concat(frames, ignore_index=True)[cols].rename(columns={"mean": "accuracy"}),
        "strategies-table",
        height=240,
        expander="Curve data",
    )
    if searches:
        charts.table(
            pd.concat(searches, ignore_index=True).drop(columns=["kind"]),
            "strategies-search-table",
            height=240,
            expander="Search configurations per FLOP budget (coverage and status counts)",
        )
    _paired(root, fp, run_ids, combos, dataset, verifier)
    if quality:
        _verifier_quality(pd.concat(quality, ignore_index=True))


def _controls(store, run_ids, models) -> tuple[str | None, float, int]:
    """The verifier, its acceptance threshold and the resampling draws, kept in the URL."""
    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        verifier = sel.verifier_choice(store, run_ids, models)
    sel.from_url("threshold", 0.5, cast=float, lo=0, hi=1)
    threshold = c2.slider("Verifier accepts at score ≥", 0.0, 1.0, step=0.05, key="threshold")
    sel.from_url("draws", 32, options=[8, 16, 32, 64, 128], cast=int)
    draws = c3.select_slider("Resampling draws", [8, 16, 32, 64, 128], key="draws")
    sel.to_url("threshold", "draws")
    return verifier, threshold, draws


def _draw_rules(fig, combos, views_of, shown: set[str], named: bool, verifier) -> tuple[list, list]:
    """The selection rules' curves (with their bands) and each verifier's ceiling; returns the curves' frames and the
    verifier-quality tables, and shows each view's notes."""
    frames, quality = [], []
    alpha = charts.band_alpha(sum(v.curves["curve"].nunique() - 1 for v in views_of))
    for (model, strategy), v in zip(combos, views_of):
        for name, d in v.curves.groupby("curve", sort=False):
            if _rule(name) not in shown:
                continue
            s = charts.series(name, model, name_model=named)
            oracle = name == "coverage (oracle)"
            if not oracle:
                charts.add_band(fig, d["x"], d["low"], d["high"], s.color, s.label, s.full, alpha=alpha)
            fig.add_trace(
                go.Scatter(
                    x=d["x"],
                    y=d["mean"],
                    mode="lines+markers",
                    name=s.label,
                    legendgroup=s.full,
                    meta={**s.meta, "kind": "pool", "customdata": ["k"]},
                    line=dict(color=s.color, dash="dot" if oracle else s.dash, width=1.5 if oracle else 2.5),
                    marker=dict(size=6, symbol=s.symbol),
                    customdata=d["k"],
                    hovertemplate=s.full + "<br>k=%{customdata}<br>accuracy=%{y:.3f}<extra></extra>",
                )
            )
        frames.append(v.curves.assign(model=model, strategy=strategy))
        for note in v.notes:
            st.info(f"{model}: {note}")
        if not v.verifier_quality.empty:
            q = v.verifier_quality.assign(model=model)
            quality.append(q)
            if verifier is not None and "best_of_n" in shown:
                ceiling = float(q.loc[q["verifier"] == verifier, "ceiling"].iloc[0])
                fig.add_hline(
                    y=ceiling,
                    line=dict(color=charts.series(f"best_of_n[{verifier}]").color, dash="longdash", width=1),
                    annotation_text=f"{model}: {verifier} ceiling {ceiling:.2f}",
                    name=f"{model}: {verifier} ceiling (imperfect-verifier bound on best-of-N)",
                    annotation_position="bottom left",
                )
    return frames, quality


def _draw_searches(fig, searches: list[pd.DataFrame], shown: set[str], named: bool, unit: str) -> None:
    """Every search configuration as a curve of stars across its budgets, placed at what it spent."""
    for sc in searches:
        model = sc["model"].iloc[0]
        for name, d in sc.groupby("configuration", sort=False):
            if d["strategy"].iloc[0] not in shown:
                continue
            s = charts.series(name, model, name_model=named)
            fig.add_trace(
                go.Scatter(
                    x=d[f"x_{unit}"],
                    y=d["accuracy"],
                    mode="lines+markers",
                    name=s.label,
                    legendgroup=s.full,
                    meta={**s.meta, "kind": "search", "customdata": SEARCH_COLUMNS},
                    line=dict(color=s.color, dash=s.dash, width=2),
                    marker=dict(symbol="star", size=12, line=dict(color=charts.REFERENCE, width=1)),
                    customdata=np.stack(  # numbers, formatted by the hover in SI (engineering) notation
                        [
                            d["budget_flops"],
                            d["spent_flops"],
                            d["budget_samples"],
                            d["questions"],
                            d["of_questions"],
                            d["x_samples"],
                        ],
                        -1,
                    ),
                    hovertemplate=(
                        s.full + "<br>budget %{customdata[0]:.3~s}FLOPs per question (≈%{customdata[2]:.1f} samples), "
                        "spent %{customdata[1]:.3~s}FLOPs (drawn there)<br>accuracy %{y:.3f} on %{customdata[3]} of "
                        "%{customdata[4]} questions<extra></extra>"
                    ),
                )
            )
            missing = _missing_marker(d, unit, s)
            if missing is not None:
                fig.add_trace(missing)


def _show_chart(fig, unit: str) -> None:
    xs = [t.x for t in fig.data if t.x is not None and len(t.x)]
    charts.log_axis(
        fig,
        np.concatenate([np.asarray(x, float) for x in xs]) if xs else [],
        charts.unit_format(unit),
        title=charts.x_label(unit),
    )
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    fig.update_layout(meta=dict(x=charts.x_column(unit), y="accuracy"))
    charts.style_figure(fig, title="Accuracy against compute: selection rules vs coverage", height=520)
    charts.chart(fig, "strategies")
    st.caption(
        "Colour: the selection rule or search (the same on every page); marker: the model. Grey dotted: coverage "
        "(an oracle picks any correct sample) — the gap to it is what the selection rule loses. Long dashes: the "
        "imperfect-verifier ceiling (fLaws) that best-of-N approaches as N grows. Stars: search configurations, one "
        "curve across the FLOP budgets they ran with, placed at what they spent (on the samples axis: as many of the "
        "pool's average samples); a hollow star at the bottom: a budget where the configuration has no point (it paid no "
        "round, or broke its cap; the hover says which)."
    )


def _verifier_quality(table: pd.DataFrame) -> None:
    st.markdown("**Verifier quality against the oracle grader**")
    charts.table(table, "verifier-quality")
    st.caption(
        "AUROC: the chance that the verifier scores a correct sample above a wrong one (0.5 is a coin). "
        "False-positive rate, precision and the ceiling are at the acceptance threshold set above."
    )
    for row in table[table["auroc"] < 0.5].itertuples():
        st.warning(
            f"{row.verifier} on {row.model} scores wrong answers above correct ones (AUROC {row.auroc:.2f}): "
            "selecting by it does worse than picking at random; compare against majority vote."
        )


def _paired(root, fp, run_ids, combos, dataset, verifier) -> None:
    """Two configurations of one model (pool rules and searches) on the same questions at matched FLOPs (matched
    samples where the runs have no FLOPs: backend/metrics/axes.py)."""
    models = sorted({m for m, s in combos if s == "sample"})
    if not models:
        return
    st.subheader("Is the difference real? Two configurations on the same questions, at matched budgets")
    if len(models) > 1:
        sel.from_url("pair_model", models[0], options=models)
        model = st.selectbox("Model", models, key="pair_model")
        sel.to_url("pair_model")
    else:
        model = models[0]
    with st.spinner("building the accuracy table on the FLOPs axis…"):
        # the confidence-aware rules are offered, and evaluated at every budget only once one is picked
        inputs = views.paired_table(root, fp, run_ids, model, dataset, verifier, confidence_rules=False)
    table = inputs.table
    if table.budget_unit != "flops":
        st.caption(inputs.notes[0])  # why there are no FLOPs to match
    names = list(table.configurations)
    own = available_rules(stored.cached_pool(root, fp, run_ids, model, dataset, "sample"))
    names[1:1] = own  # where the whole table has them: after majority
    if len(names) < 2:
        st.info(f"{model} has one configuration here; a comparison needs two (add a verifier or a search).")
        return
    searches = [n for n, kind in zip(table.configurations, table.kind) if kind == "search"]
    baseline = next((n for n in names if n.startswith("best_of_n")), names[1])
    first = searches[0] if searches else next(n for n in names if n != baseline)
    paired.section(
        names,
        lambda a, b, _questions: views.compare_in_table(root, fp, run_ids, model, dataset, verifier, a, b),
        ["all"],
        default_a=first,
        default_b=baseline,
        a_key="strat_pair_a",
        b_key="strat_pair_b",
        bin_key="strat_pair_bin",
    )


frame.run_page(
    "strategies", "Strategies", body, caption="Selection rules and models side by side, against coverage.", share=True
)
