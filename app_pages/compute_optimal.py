"""Compute-optimal (Snell et al. 2024) for the user's own runs: per difficulty bin and FLOP budget the best of every
configuration run (pool rules and searches, chosen by 2-fold cross-validation), that choice against best-of-N and
each single configuration, which strategy wins on easy vs hard questions, the sequential:parallel ratio per bin,
and the FLOPs-matched comparison with a larger model. Numbers come from backend.metrics.study, as `ttc
compute-optimal` prints them."""

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _paired as paired
from app_pages import _quality as data_quality
from app_pages import _report as study_report
from app_pages import _selection as sel
from app_pages import _store as stored
from app_pages import _views as views
from backend import visual as look
from backend.metrics.compute_optimal import SNELL_R_VALUES, flops_matched_comparison
from backend.metrics.study import COMPUTE_OPTIMAL
from backend.report import budget_answers, budget_labels, efficiency_reading

BINS = ["oracle", "predicted"]
BUDGET_AXIS = "budget (FLOPs per question)"


def _budget_axis(table) -> str:
    """The budget axis' title: FLOPs, or samples where the runs have none (backend/metrics/axes.py)."""
    return "budget (samples per question)" if table.budget_unit == "samples" else BUDGET_AXIS


def _unit(table) -> str:
    return " samples" if table.budget_unit == "samples" else "FLOPs"


def _short(table, name: str) -> str:
    """The family (and sweep ratio) of a configuration: what fits in a heat-map cell; the hover has the full name."""
    if not name:
        return "—"
    i = table.index(name)
    return f"{table.strategy[i]} {table.ratio[i]}" if table.ratio[i] else str(table.strategy[i])


def _answer(study, report) -> None:
    """The page's answer, first: one line per budget (backend.report.budget_answers) and the best efficiency."""
    r = study.result
    st.markdown(
        f"**Which configuration wins at each budget, and is it real?** (over all questions, against `{r.baseline}`)"
    )
    st.markdown("\n".join(f"- {a.sentence}" for a in reversed(budget_answers(study, report))))
    value, why = efficiency_reading(report, r.baseline)
    st.markdown(
        f"**Best efficiency vs `{r.baseline}`**: {value} ({why}). Samples in a budget's label: what `{r.baseline}` "
        "draws per question there (the prompt is read once, so a budget buys more samples than its size in one "
        "sample's FLOPs); 'pool exhausted at n': the budget would buy more than the n samples the pool holds."
    )


def _configuration_trace(table, name: str, d, label: str, *, bin: str = "all", **kw) -> go.Scatter:
    """One configuration's accuracy across FLOP budgets (rows of `cells_by_bin()`) in its colour of every page,
    its hover saying the budget in samples and how many questions each point covers."""
    s = charts.series(name)
    return go.Scatter(
        x=d["budget_flops"],
        y=d["accuracy"],
        mode="lines+markers",
        name=s.label,
        meta={
            **s.meta,
            "kind": table.kind[table.index(name)],
            "customdata": ["budget_samples_equivalent", "questions", "of_questions", "budget"],
            "columns": {"bin": bin},
        },
        line=dict(color=s.color, dash=s.dash, width=1.8),
        marker=dict(size=6, symbol="circle" if table.kind[table.index(name)] == "pool" else "star"),
        customdata=np.stack(
            [d["budget_samples"], d["questions"], d["of_questions"], [look.eng(b) for b in d["budget_flops"]]], -1
        ).astype(object),
        hovertemplate=label + f"<br>%{{customdata[3]}}{_unit(table)} (≈%{{customdata[0]:.1f}} samples)<br>"
        "accuracy %{y:.3f} on %{customdata[1]} of %{customdata[2]} questions<extra></extra>",
        **kw,
    )


def _standings(study, cells) -> np.ndarray:
    """(L, B) hover text: every configuration's accuracy on the whole bin at that budget, best first (in-sample:
    what the choice was made from, not what it scores), with the questions it covers where it misses some."""
    out = np.empty((len(study.result.levels), len(study.table.budgets)), dtype=object)
    for i, lv in enumerate(study.result.levels):
        mine = cells[cells["bin"] == str(int(lv))]
        for b, budget in enumerate(study.table.budgets):
            d = mine[mine["budget_flops"] == budget].sort_values("accuracy", ascending=False, na_position="last")
            out[i, b] = "<br>".join(
                f"  {row.configuration}: "
                + ("—" if row.questions == 0 else f"{row.accuracy:.2f}")
                + ("" if row.questions == row.of_questions else f" ({row.questions}/{row.of_questions} questions)")
                for row in d.itertuples()
            )
    return out


def _heatmap(study, cells, report) -> None:
    r, t = study.result, study.table
    fold0, fold1 = r.chosen_names(0), r.chosen_names(1)
    sizes = np.asarray([study.bin_sizes[int(lv)] for lv in r.levels])
    per_bin = report[report["bin"] != "all"]  # rows bin-major, budgets in order: the heat map's cells
    shape = (len(r.levels), len(r.budgets))
    verdicts = per_bin["vs_baseline_verdict"].to_numpy(dtype=object).reshape(shape)
    unclear = ~per_bin["vs_baseline_significant"].to_numpy(dtype=bool).reshape(shape) & (fold0 != "")
    gaps = np.asarray(
        [
            "—" if not np.isfinite(g) else f"{g:+.2f}" + ("" if not np.isfinite(lo) else f" ({lo:+.2f} to {hi:+.2f})")
            for g, lo, hi in zip(per_bin["gap"], per_bin["gap_lo"], per_bin["gap_hi"])
        ],
        dtype=object,
    ).reshape(shape)
    custom = np.stack(
        [
            fold0,
            fold1,
            np.repeat(sizes[:, None], len(r.budgets), 1).astype(object),
            _standings(study, cells),
            verdicts,
            gaps,
        ],
        -1,
    )
    names = np.vectorize(lambda n: _short(t, n))(fold0)
    fig = go.Figure(
        go.Heatmap(
            z=r.accuracy_by_bin,
            x=budget_labels(t, r.baseline, sep="<br>"),
            y=[f"bin {lv}" for lv in r.levels],
            text=np.where(unclear, np.char.add(names.astype(str), " (n.s.)"), names),
            customdata=custom,
            texttemplate="%{text}<br>%{z:.2f}",
            textfont=dict(size=11),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="held-out<br>accuracy"),
            meta={
                "kind": "policy",
                "text": "chosen",
                "customdata": [
                    "chosen_on_fold_0",
                    "chosen_on_fold_1",
                    "bin_questions",
                    "every_configuration_on_the_bin",
                    "vs_baseline",
                    "gap_to_baseline",
                ],
            },
            hovertemplate=(
                "%{y} (%{customdata[2]} questions)<br>budget %{x}<br>chosen on fold 0: %{customdata[0]}<br>"
                "chosen on fold 1: %{customdata[1]}<br>held-out accuracy %{z:.3f}<br>"
                f"against {r.baseline}: " + "%{customdata[4]}<br>gap (bootstrap band, the choice re-made): "
                "%{customdata[5]}<br>every configuration on the whole bin:<br>"
                "%{customdata[3]}<extra></extra>"
            ),
        )
    )
    fig.update_xaxes(title=_budget_axis(t), type="category")
    fig.update_yaxes(title=f"difficulty ({study.bins.kind}; bin 1 = easiest)", autorange="reversed")
    fig.update_layout(meta=dict(x="budget", y="difficulty_bin", z="held_out_accuracy"))
    charts.style_figure(fig, title="Best configuration per difficulty bin and FLOP budget (all strategies)", height=440)
    charts.chart(fig, "compute-optimal-heatmap")
    st.caption(
        "Each cell: the configuration picked on one half of the bin's questions, coloured by its accuracy on the "
        "other half (the halves then swap; the hover shows both picks and every configuration's standing on the whole bin). '—': no "
        f"configuration covers the bin there. '(n.s.)': on the bin's questions the policy is not significantly different "
        f"from {r.baseline} (the paired sign-flip test of the mean difference, 5%; the hover says roughly how many "
        "more questions would tell). " + study.held_out
    )


def _band_traces(study) -> list[go.Scatter]:
    """The cross-validated curve's bootstrap band: its upper edge, then its lower edge filled up to it."""
    band = study.band
    if band is None:
        return []
    label = f"compute-optimal, {band.confidence:.0%} band"
    common = dict(
        x=study.result.budgets,
        mode="lines",
        line=dict(width=0),
        legendgroup="cv",
        hoverinfo="skip",
        meta={"export": False},  # in the CSV as the cross-validated curve's low and high columns
    )
    return [
        go.Scatter(y=band.accuracy_high, showlegend=False, **common),
        go.Scatter(
            y=band.accuracy_low,
            name=label,
            fill="tonexty",
            fillcolor=look.rgba(charts.POLICY, 0.15),
            **common,
        ),
    ]


def _gap_text(study, report) -> str:
    """The policy's gap to the baseline at each budget over all questions, with its bootstrap interval."""
    band, r = study.band, study.result
    if band is None:
        return ""
    whole = report[report["bin"] == "all"].sort_values("budget_flops")
    labels = budget_labels(study.table, r.baseline)
    parts = [
        f"{label}: {row.gap:+.2f} ({row.gap_lo:+.2f} to {row.gap_hi:+.2f})"
        for label, row in zip(labels, whole.itertuples())
        if np.isfinite(row.gap)
    ]
    if not parts:
        return ""
    return (
        f" Gap to {r.baseline} over all questions, with its {band.confidence:.0%} bootstrap interval: "
        + "; ".join(parts)
        + f". The shaded band and these intervals resample the questions {band.n_boot:,} times within each bin's "
        "halves and re-make the choice on every resample, so they include how much the choice itself varies (the "
        "paired interval of 'Is the difference real?' holds the chosen configurations fixed); the bins are the "
        "full data's, as the curve's are."
    )


def _against_every_configuration(study, cells, report) -> None:
    r, t = study.result, study.table
    fig = go.Figure()
    for name, d in cells[cells["bin"] == "all"].groupby("configuration", sort=False):
        fig.add_trace(_configuration_trace(t, name, d, name, opacity=0.75))
    for trace in _band_traces(study):
        fig.add_trace(trace)
    band = study.band
    for y, name, style, ends in (
        (
            r.in_sample_accuracy,
            "compute-optimal (in-sample, optimistic)",
            dict(color=charts.POLICY, dash="dot", width=2),
            None,
        ),
        (
            r.accuracy,
            "compute-optimal (cross-validated)",
            dict(color=charts.POLICY, width=4),
            None if band is None else (band.accuracy_low, band.accuracy_high),
        ),
    ):
        hover = name + f"<br>%{{x:.3s}}{_unit(t)} (≈%{{customdata[0]:.1f}} samples)<br>accuracy %{{y:.3f}}"
        if ends is not None:
            hover += f"<br>{band.confidence:.0%} band " + "%{customdata[1]:.3f} to %{customdata[2]:.3f}"
        fig.add_trace(
            go.Scatter(
                x=r.budgets,
                y=y,
                mode="lines+markers",
                name=look.short_label(name),
                legendgroup="cv" if ends is not None else None,
                meta={
                    "full": name,
                    "kind": "policy",
                    "customdata": ["budget_samples_equivalent"]
                    + ([] if ends is None else ["accuracy_low", "accuracy_high"]),
                },
                line=style,
                customdata=np.stack([t.budget_samples, *(ends or ())], -1),
                hovertemplate=hover + "<extra></extra>",
            )
        )
    charts.log_axis(fig, r.budgets, look.eng, title=_budget_axis(t))
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    fig.update_layout(meta=dict(x="budget_flops_per_question", y="accuracy"))
    charts.style_figure(fig, title=f"Compute-optimal against {r.baseline} and every single configuration", height=520)
    charts.chart(fig, "compute-optimal-vs-configurations")
    st.caption(
        "Colour: the configuration's family, as on every page; circles: pool rules (majority, best-of-N, weighted "
        "best-of-N over the samples); stars: searches. A point "
        "is a configuration's accuracy over the questions it covers at that budget (the hover says how many); a "
        "gap is a budget it could not afford or did not run." + _gap_text(study, report)
    )


def _by_bin(study, cells) -> None:
    t = study.table
    levels = [str(int(lv)) for lv in study.result.levels]
    cols = min(len(levels), 3)
    fig = make_subplots(
        rows=math.ceil(len(levels) / cols),
        cols=cols,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        vertical_spacing=0.12,
        subplot_titles=[f"bin {lv} ({study.bin_sizes[int(lv)]} questions)" for lv in levels],
    )
    for j, lv in enumerate(levels):
        for name, d in cells[cells["bin"] == lv].groupby("configuration", sort=False):
            fig.add_trace(
                _configuration_trace(t, name, d, f"{name} · bin {lv}", bin=lv, legendgroup=name, showlegend=j == 0),
                row=j // cols + 1,
                col=j % cols + 1,
            )
    charts.log_axis(fig, t.budgets, look.eng)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(title=_budget_axis(t), row=math.ceil(len(levels) / cols))
    fig.update_yaxes(title="accuracy", col=1)
    fig.update_layout(meta=dict(x="budget_flops_per_question", y="accuracy"))
    charts.style_figure(
        fig,
        title="Accuracy against FLOPs per difficulty bin: which strategy wins where",
        height=300 * math.ceil(len(levels) / cols) + 140,
    )
    charts.chart(fig, "compute-optimal-by-bin")


def _ratio_sweep(study, cells) -> None:
    sweep = study.ratio_sweep(cells)
    sweep = sweep[sweep["bin"] != "all"]
    if sweep.empty:
        return
    st.subheader("Sequential vs parallel: the best ratio per difficulty bin")
    t = study.table
    options = list(range(len(t.budgets)))
    labels = budget_labels(t, study.result.baseline)
    sel.from_url("ratio_budget", options[-1], options=options, cast=int)
    b = st.select_slider(
        "FLOP budget",
        options,
        key="ratio_budget",
        format_func=lambda i: labels[i],
    )
    sel.to_url("ratio_budget")
    at = sweep[sweep["budget_flops"] == t.budgets[b]]
    order = sorted(at["ratio"].unique(), key=lambda x: -_sequential_share(x))
    fig = go.Figure()
    levels = sorted(at["bin"].unique(), key=int)
    for (lv, strategy), d in at.groupby(["bin", "strategy"], sort=True):
        d = d.set_index("ratio").reindex(order).reset_index()
        name = look.short_label(f"bin {lv}" + (f" · {strategy}" if at["strategy"].nunique() > 1 else ""))
        fig.add_trace(
            go.Scatter(
                x=d["ratio"],
                y=d["accuracy"],
                mode="lines+markers",
                name=name,
                line=dict(color=charts.ordered_color(levels.index(lv), len(levels)), dash=look.config_dash(strategy)),
                marker=dict(
                    size=np.where(d["best"].fillna(False).astype(bool), 16, 7),
                    symbol=np.where(d["best"].fillna(False).astype(bool), "star", "circle"),
                ),
                meta={
                    "kind": "search",
                    "customdata": ["questions", "of_questions"],
                    "columns": {"strategy": strategy, "bin": lv, "budget_flops_per_question": t.budgets[b]},
                },
                customdata=np.stack([d["questions"], d["of_questions"]], -1),
                hovertemplate=name
                + "<br>seq:par %{x}<br>accuracy %{y:.3f} on %{customdata[0]} of %{customdata[1]} questions<extra></extra>",
            )
        )
    fig.update_xaxes(
        title="sequential : parallel (more sequential to the left)",
        type="category",
        categoryorder="array",
        categoryarray=order,
    )
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    fig.update_layout(meta=dict(x="sequential_parallel_ratio", y="accuracy"))
    charts.style_figure(fig, title="Accuracy against the sequential:parallel ratio (star: the bin's best)")
    charts.chart(fig, "ratio-sweep")
    charts.table(at.drop(columns=["kind"]), "ratio-sweep-table", expander="Ratio sweep data")


def _sequential_share(ratio: str) -> float:
    seq, _, par = ratio.partition(":")
    try:
        return float(seq) / (float(seq) + float(par))
    except ValueError:
        return 0.0


def _flops_matched(study, root, fp, run_ids, model, dataset, combos) -> None:
    st.subheader("FLOPs-matched: more test-time compute, or a larger model?")
    if study.table.budget_unit != "flops":
        st.info("Not drawn: it matches FLOPs, and these runs have none (the note above says why).")
        return
    box = st.expander(  # drawn only while open; a link that sets its numbers opens it
        "Compare with a larger model at the same total FLOPs",
        key="flops_matched_open",
        on_change="rerun",
        expanded=any(p in st.query_params for p in ("M", "R")),
    )
    if box.open:
        with box:
            _flops_matched_body(study, root, fp, run_ids, model, dataset, combos)


def _flops_matched_body(study, root, fp, run_ids, model, dataset, combos) -> None:
    others = sorted({m for m, s in combos if s == "sample" and m != model})
    per_token = views.decode_flops_per_token(root, fp, run_ids)
    c1, c2, c3, c4 = st.columns(4)
    large = c1.selectbox("Larger model", ["(enter its accuracy)"] + others, key="large")
    if large in others:
        large_acc = views.pass_at_1(root, fp, run_ids, large, dataset)
        c2.metric("its pass@1", f"{large_acc:.3f}")
    else:
        large_acc = c2.number_input("Larger model's accuracy", 0.0, 1.0, 0.5, 0.05, key="large_acc")
    if large in others and per_token.get(large) and per_token.get(model):
        size_ratio = float(per_token[large] / per_token[model])
        c3.metric(
            "M = size ratio (larger / this)",
            f"{size_ratio:.2f}",
            help="decode FLOPs per generated token of the two models, from the store's ledger",
        )
    else:
        sel.from_url("M", 4.0, cast=float, lo=1)
        size_ratio = c3.number_input("M = size ratio (larger / this)", min_value=1.0, step=0.5, key="M")
        sel.to_url("M")
    sel.from_url("R", 0.79, cast=float, lo=0.001)
    custom_r = c4.number_input("R = D_inference / D_pretrain", min_value=0.001, step=0.1, key="R", format="%.3f")
    sel.to_url("R")
    if size_ratio < 1:
        st.warning(f"{large} costs less per token than {model} (M = {size_ratio:.2f}); pick a larger model.")
        return
    r_values = sorted({*SNELL_R_VALUES, float(custom_r)})
    one = study.table.one_sample_flops
    cmp = flops_matched_comparison(study.result, size_ratio, float(large_acc), r_values=r_values, sample_budget=one)
    cmp["small_model_budget_samples"] = cmp["small_model_budget"] / one
    fig = go.Figure()
    labels = [f"R={x:g}" for x in cmp["R"]]
    fig.add_trace(
        go.Bar(
            x=labels,
            y=cmp["small_model_accuracy"],
            name=look.short_label(f"{model} · compute-optimal"),
            marker_color=charts.color(0),
            meta={"kind": "policy", "customdata": ["flops_per_question", "samples_equivalent"]},
            customdata=np.stack([cmp["small_model_budget"], cmp["small_model_budget_samples"]], -1),
            hovertemplate=f"{model}, compute-optimal at matched FLOPs<br>"
            + "%{x}<br>%{customdata[0]:.3s}FLOPs per question (≈%{customdata[1]:.1f} samples)<br>accuracy %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=labels,
            y=cmp["large_model_accuracy"],
            name=look.short_label(f"{large if large in others else 'larger model'} · pass@1"),
            marker_color=charts.color(1),
            meta={"kind": "pass@1"},
        )
    )
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    fig.update_xaxes(title="R (inference tokens / pretraining tokens)")
    fig.update_layout(meta=dict(x="R_inference_over_pretraining_tokens", y="accuracy"))
    charts.style_figure(
        fig, title=f"Same total FLOPs: {model} with test-time compute vs a {size_ratio:.3g}× larger model"
    )
    charts.chart(fig, "flops-matched")
    st.caption(
        "The small model gets M + 3·(M−1)/R times the FLOPs of one of its own samples (Snell et al. §7). "
        "Empty bars: the matched budget lies outside the budgets measured."
    )
    charts.table(cmp, "flops-matched-table", expander="FLOPs-matched comparison data")


def body(store) -> None:
    run_ids, combos, dataset, _ = sel.pool_selection(store, x_axis=False)
    models = sorted({m for m, s in combos if s == "sample"})
    if not models:
        st.info("Select a run with sampling pools (strategy 'sample').")
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    sel.from_url("model", models[0], options=models)
    model = c1.selectbox("Model", models, key="model")
    sel.from_url("bins", "oracle", options=BINS)
    bins = c2.radio(
        "Difficulty",
        BINS,
        key="bins",
        horizontal=True,
        help="oracle: each question's pass@1 over all its pool's samples (ground truth); predicted: its mean "
        "verifier score over all its samples (no ground truth; the pool's own scores, charged to no budget). "
        "Either way the bins come from every question; the 2-fold CV holds out the choice of configuration",
    )
    with c3:
        verifier = sel.verifier_choice(store, run_ids, [model])
    sel.from_url("nbins", views.STUDY_BINS, options=[2, 3, 4, 5, 6, 8, 10], cast=int)
    n_bins = c4.selectbox("Bins", [2, 3, 4, 5, 6, 8, 10], key="nbins")
    sel.to_url("model", "bins", "nbins")
    root, fp = str(store.root), stored.fingerprint(store)
    with st.spinner("cross-validating configurations per bin…"):
        study = views.compute_optimal_view(
            root, fp, run_ids, model, dataset, verifier, bins, int(n_bins), views.STUDY_DRAWS, views.STUDY_SEED
        )
    r = study.result
    key = (root, fp, run_ids, model, dataset, verifier, bins, int(n_bins), views.STUDY_DRAWS, views.STUDY_SEED)
    report, cells = views.compute_optimal_tables(*key)  # every chart and table below reads these
    _answer(study, report)
    data_quality.strip(store, run_ids, [model], dataset, bins=(study.table.question_ids, study.bins.level))
    study_report.download_button(  # the study above is the report's when no dataset narrows it
        store,
        run_ids,
        [model],
        study=study if dataset is None else None,
        verifier=verifier,
        bins=bins,
        n_bins=int(n_bins),
    )
    for note in study.notes:
        st.info(note)

    _heatmap(study, cells, report)
    _against_every_configuration(study, cells, report)
    value, why = efficiency_reading(report, r.baseline)
    m1, m2 = st.columns(2)
    m1.metric(
        f"Best efficiency vs {r.baseline}",
        value,
        help=f"FLOPs the baseline needs / FLOPs compute-optimal needs for the same accuracy; {why}",
    )
    if value == "—":
        m1.caption(f"Undefined: {why}.")
    m2.metric("Questions per bin", ", ".join(str(n) for n in study.bin_sizes.values()))
    charts.table(
        report,
        "compute-optimal-efficiency",
        expander="Choice, accuracy, efficiency and the paired test against the baseline per bin and budget",
    )
    st.subheader("Is the difference real? Two configurations on the same questions")
    paired.section(
        study.compared(),
        lambda a, b, which: views.compute_optimal_compare(*key, a, b, which),
        ["all", *(str(int(lv)) for lv in r.levels)],
        default_a=COMPUTE_OPTIMAL,
        default_b=r.baseline,
    )
    by_bin = st.expander(  # a chart of every configuration in every bin: drawn only while open
        "Every configuration per difficulty bin: which strategy wins where",
        key="by_bin_open",
        on_change="rerun",
    )
    if by_bin.open:
        with by_bin:
            _by_bin(study, cells)
    charts.table(
        cells,
        "compute-optimal-cells",
        expander="Every configuration per bin and budget (with coverage and status counts)",
    )
    _ratio_sweep(study, cells)
    _flops_matched(study, root, fp, run_ids, model, dataset, combos)


frame.run_page(
    "compute_optimal",
    "Compute-optimal",
    body,
    caption="Snell et al. 2024: the best strategy per difficulty and FLOP budget, chosen on one half of each "
    "difficulty bin's questions and scored on the other (2-fold CV).",
    share=True,
)
