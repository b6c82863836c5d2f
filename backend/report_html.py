"""A stored study as one self-contained HTML file (`ttc report -o study.html`, the pages' "Download report").

Everything the file shows comes from the backend's own builders, the numbers `ttc report`'s Markdown, the
Compute-optimal page and `ttc compute-optimal` give: the study (backend/metrics/study.py, with its bootstrap band),
the pool's coverage (backend/metrics/coverage.py), cost-of-pass (backend/metrics/cost.py, Erol et al. 2025) where
prices are known, and the data quality (backend/metrics/quality.py). The file makes no network request when opened:
plotly.js is inlined from the installed plotly package, each figure's data sits in a JSON block beside its chart, and
the print stylesheet starts each section on a new A4 page with charts sized to fit it."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.metrics.cost import Price, cost_table, curve_cost_rows
from backend.metrics.coverage import coverage_curve
from backend.metrics.pools import load_pool
from backend.metrics.selection import selection_curves
from backend.metrics.study import COMPUTE_OPTIMAL
from backend.report import OpenedStudy, StudyRecord, headline, open_study, study_record

SECTIONS = (
    ("runs", "Runs, specs and engines"),
    ("reading", "Reading"),
    ("quality", "Data quality"),
    ("coverage", "Coverage"),
    ("strategies", "Strategies against compute"),
    ("cost", "Cost-of-pass"),
    ("compute-optimal", "Compute-optimal choice"),
    ("configurations", "Every configuration"),
)
"""(element id, heading) of every section, in the file's order."""

WIDTH, HEIGHT = 680, 380  # px: a chart fits the 186 mm text width of an A4 page at 96 dpi, two to a page
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")  # Okabe–Ito

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 720px;
       margin: 24px auto; padding: 0 12px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 2px; }
.meta { color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 11px; margin: 8px 0 12px; width: 100%; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code, pre { font: 11px/1.35 ui-monospace, Menlo, Consolas, monospace; }
pre { background: #f7f7f7; padding: 6px; white-space: pre-wrap; word-break: break-all; }
.chart { width: 680px; height: 380px; margin: 8px 0; }
.warning { border-left: 3px solid #D55E00; padding-left: 8px; white-space: pre-line; }
@page { size: A4; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  .chart, tr, pre { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""


# ---- inputs ----------------------------------------------------------------------------------------------------


def spec_prices(specs: Sequence[dict]) -> dict[str, Price]:
    """Prices the run specs record (models[].price_in_per_m / price_out_per_m, USD per 1M tokens), per model."""
    out: dict[str, Price] = {}
    for spec in specs:
        for m in spec.get("models", []):
            if isinstance(m, dict) and m.get("price_in_per_m") is not None:
                p_in = float(m["price_in_per_m"])
                out[m["name"]] = Price(p_in, float(m.get("price_out_per_m") or p_in))
    return out


def _runs(con: duckdb.DuckDBPyConnection, runs: Sequence[str]) -> pd.DataFrame:
    return con.execute(
        "SELECT run_id, name, status, total_samples, created_at, started_at, finished_at, spec_json FROM runs "
        "WHERE list_contains(?, run_id) ORDER BY created_at",
        [list(runs)],
    ).df()


def build_report(
    con: duckdb.DuckDBPyConnection,
    root: object,
    runs: Sequence[str] | None = None,
    model: str | None = None,
    *,
    prices: Mapping[str, Price] | None = None,
    opened: OpenedStudy | None = None,
    **study_arguments,
) -> str:
    """The HTML report of the study `ttc report` prints for these runs and model (backend.report.open_study:
    the same defaults and typed errors). `prices`: USD per 1M tokens per model, default the run specs' prices.
    `opened`: that study already built (a page's cached one), not built again."""
    if opened is None:
        opened = open_study(con, root, runs, model, **study_arguments)
    record = study_record(con, opened.runs, opened.study.model)
    run_rows = _runs(con, opened.runs)
    specs = [json.loads(s) for s in run_rows["spec_json"].dropna()]
    study = opened.study
    verifier = study.verifier
    pool = load_pool(con, list(opened.runs), study.model, strategy="sample", verifiers=[verifier] if verifier else [])
    coverage = coverage_curve(pool)
    known = dict(spec_prices(specs) if prices is None else prices)
    cost = None
    if study.model in known:
        rows = pd.concat(
            [
                curve_cost_rows(study.model, name, curve, pool)
                for name, curve in selection_curves(pool, verifier, draws=32).items()
            ],
            ignore_index=True,
        )
        cost = cost_table(rows, {study.model: known[study.model]})
    return study_html(opened, record, run_rows, specs, coverage, cost)


# ---- figures ---------------------------------------------------------------------------------------------------


def _plain(obj):
    """JSON-ready: arrays to lists (plotly's base64 typed arrays decoded, so the file's numbers can be read back as
    they are), NaN and infinities to null (a gap in the chart)."""
    if isinstance(obj, dict) and set(obj) >= {"dtype", "bdata"}:
        values = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
        if "shape" in obj:
            values = values.reshape([int(n) for n in str(obj["shape"]).split(",")])
        return _plain(values)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _layout(fig: go.Figure, title: str, x: str, y: str, *, log_x: bool = True, log_y: bool = False) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        width=WIDTH,
        height=HEIGHT,
        margin=dict(l=60, r=10, t=40, b=50),
        plot_bgcolor="white",
        paper_bgcolor="white",
        font=dict(size=11),
        legend=dict(font=dict(size=9)),
    )
    fig.update_xaxes(title=x, type="log" if log_x else "linear", gridcolor="#e5e5e5", dtick=1 if log_x else None)
    fig.update_yaxes(title=y, type="log" if log_y else "linear", gridcolor="#e5e5e5", dtick=1 if log_y else None)
    return fig


def _band(fig: go.Figure, x, low, high, color: str, group: str) -> None:
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([high, low[::-1]]),
            fill="toself",
            fillcolor=color,
            opacity=0.15,
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=group,
            name=f"{group} 95% band",
        )
    )


def coverage_figure(curve) -> go.Figure:
    k = np.asarray(curve.k, float)
    fig = go.Figure()
    _band(fig, k, np.asarray(curve.low), np.asarray(curve.high), PALETTE[0], "coverage")
    fig.add_trace(go.Scatter(x=k, y=curve.mean, mode="lines+markers", name="coverage", line=dict(color=PALETTE[0])))
    return _layout(fig, "Coverage (pass@k) with its 95% bootstrap band", "samples per question (k)", "pass@k")


def strategies_figure(cells: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (name, d) in enumerate(cells.groupby("configuration", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=d["budget_flops"].to_numpy(),
                y=d["accuracy"].to_numpy(),
                mode="lines+markers",
                name=name if len(name) <= 40 else name[:39] + "…",
                line=dict(color=PALETTE[i % len(PALETTE)], dash=("solid", "dash", "dot", "dashdot")[i // 8 % 4]),
                hovertext=name,
            )
        )
    return _layout(fig, "Accuracy of every configuration against FLOPs per question", "FLOPs per question", "accuracy")


def cost_figure(cost: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (rule, d) in enumerate(cost.groupby("strategy", sort=True)):
        fig.add_trace(
            go.Scatter(
                x=d["budget"].to_numpy(),
                y=d["cost_of_pass"].to_numpy(),
                mode="lines+markers",
                name=rule,
                line=dict(color=PALETTE[i % len(PALETTE)]),
            )
        )
    return _layout(
        fig,
        "Cost-of-pass: expected spend per correct answer",
        "samples per question (k)",
        "USD per correct answer",
        log_y=True,
    )


def heatmap_figure(report: pd.DataFrame) -> go.Figure:
    """Bins (rows, in level order) × budgets: colour the held-out accuracy, text the configuration each fold chose
    (cut short in the cell; whole in the hover)."""
    by_bin = report[report["bin"] != "all"].assign(level=lambda d: d["bin"].astype(int))
    picks = by_bin.assign(pick=[_picks(r) for _, r in by_bin.iterrows()])
    z = by_bin.pivot(index="level", columns="budget_samples", values="held_out_accuracy")
    whole = picks.pivot(index="level", columns="budget_samples", values="pick")
    short = whole.map(lambda t: "<br>".join(p if len(p) <= 22 else p[:21] + "…" for p in t.split(" / ")))
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=[f"≈ {b:.3g}" for b in z.columns],
            y=[f"bin {b}" for b in z.index],
            text=short.to_numpy(),
            hovertext=whole.to_numpy(),
            texttemplate="%{text}",
            hovertemplate="%{y}, %{x} samples' FLOPs<br>%{hovertext}<br>held-out accuracy %{z:.2f}<extra></extra>",
            textfont=dict(size=8),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="held-out acc."),
        )
    )
    return _layout(
        fig,
        "Chosen configuration per difficulty bin and budget (colour: held-out accuracy)",
        "budget (samples' FLOPs per question)",
        "difficulty bin (1 = easiest)",
        log_x=False,
    )


def curves_figure(report: pd.DataFrame, baseline: str) -> go.Figure:
    whole = report[report["bin"] == "all"].sort_values("budget_flops")
    x = whole["budget_flops"].to_numpy(float)
    fig = go.Figure()
    if np.isfinite(whole["cv_lo"].to_numpy(float)).any():
        _band(fig, x, whole["cv_lo"].to_numpy(float), whole["cv_hi"].to_numpy(float), PALETTE[0], COMPUTE_OPTIMAL)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=whole["held_out_accuracy"].to_numpy(),
            mode="lines+markers",
            name=COMPUTE_OPTIMAL,
            line=dict(color=PALETTE[0]),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=whole["baseline_accuracy"].to_numpy(),
            mode="lines+markers",
            name=baseline,
            line=dict(color=PALETTE[1], dash="dash"),
        )
    )
    return _layout(
        fig, "Compute-optimal (held out) against the baseline, all questions", "FLOPs per question", "accuracy"
    )


# ---- text ------------------------------------------------------------------------------------------------------


def _picks(row: pd.Series) -> str:
    picks = [p for p in (row["chosen_fold0"], row["chosen_fold1"]) if isinstance(p, str) and p]
    return "—" if not picks else " / ".join(dict.fromkeys(picks))


def markdown_inline(text: str) -> str:
    """The Markdown of backend.report's sentences (**bold** and `code` only) as HTML, the rest escaped."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def reading(report: pd.DataFrame, baseline: str) -> list[str]:
    """The headline (backend.report.headline), then one sentence per budget over all questions: the policy
    against the baseline, its paired interval and p-value."""
    lines = [headline(report, baseline)]
    for _, r in report[report["bin"] == "all"].sort_values("budget_flops").iterrows():
        if r["vs_baseline_questions_paired"] == 0:
            continue
        d = r["vs_baseline_difference"]
        verb = "beats" if d > 0 else ("trails" if d < 0 else "ties")
        lines.append(
            f"At ≈ {r['budget_samples']:.3g} samples' FLOPs the policy {verb} `{baseline}` by {abs(d):.2f} "
            f"(interval {r['vs_baseline_ci_low']:+.2f} to {r['vs_baseline_ci_high']:+.2f}, "
            f"p = {r['vs_baseline_p_value']:.2g})."
        )
    return lines


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:.4g}", escape=True)


def _figure(fid: str, fig: go.Figure) -> str:
    spec = json.dumps(_plain(fig.to_plotly_json()), allow_nan=False).replace("</", "<\\/")
    return f'<div class="chart" id="{fid}"></div>\n<script type="application/json" data-figure="{fid}">{spec}</script>'


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}">\n<h2>{html.escape(title)}</h2>\n{body}\n</section>'


def _engines(specs: Sequence[dict]) -> pd.DataFrame:
    """Models and engines as the run specs record them."""
    rows = []
    for spec in specs:
        engine = spec.get("engine", {}) or {}
        for m in spec.get("models", []) or []:
            model = m if isinstance(m, dict) else {"name": m}
            rows.append(
                dict(
                    run=spec.get("name", ""),
                    model=model.get("name", ""),
                    source=", ".join(f"{k}={v}" for k, v in model.items() if k != "name"),
                    engine=engine.get("kind", "?"),
                    engine_settings=", ".join(f"{k}={v}" for k, v in engine.items() if k != "kind"),
                )
            )
    return pd.DataFrame(rows)


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


RENDER = """
document.querySelectorAll('script[data-figure]').forEach(function (s) {
  var spec = JSON.parse(s.textContent);
  Plotly.newPlot(s.getAttribute('data-figure'), spec.data, spec.layout, {displayModeBar: false, staticPlot: false});
});
document.body.setAttribute('data-rendered', 'yes');
"""


def study_html(
    opened: OpenedStudy,
    record: StudyRecord,
    run_rows: pd.DataFrame,
    specs: Sequence[dict],
    coverage,
    cost: pd.DataFrame | None,
) -> str:
    study = opened.study
    report = study.report()
    baseline = study.result.baseline
    cells = study.table.cells()
    body: dict[str, str] = {}

    runs_view = run_rows.drop(columns=["spec_json"]).astype(str)
    spec_blocks = "".join(
        f"<p><code>{html.escape(str(s.get('name', '')))}</code></p><pre>{html.escape(json.dumps(s, indent=1))}</pre>"
        for s in specs
    )
    left = "".join(f"<li><code>{html.escape(r)}</code>: {html.escape(w)}</li>" for r, w in opened.left_out)
    body["runs"] = (
        f"<p>Model <code>{html.escape(study.model)}</code>; runs {', '.join(f'<code>{html.escape(r)}</code>' for r in opened.runs)}; "
        f"engines {html.escape(', '.join(record.engines))}; scored by <code>{html.escape(str(study.verifier))}</code>.</p>"
        + _table(runs_view)
        + "<h3>Models and engines as recorded</h3>"
        + _table(_engines(specs))
        + (f"<p>Runs of the store left out of the default selection:</p><ul>{left}</ul>" if left else "")
        + "<h3>Specs</h3>"
        + spec_blocks
    )
    body["reading"] = "".join(f"<p>{markdown_inline(line)}</p>" for line in reading(report, baseline)) + (
        f"<p>{html.escape(study.held_out)}</p>"
    )
    q = record.quality
    body["quality"] = (
        "<p>No samples.</p>"
        if q.table.empty
        else f"<p>{html.escape(q.summary())}.</p>"
        + "".join(f'<p class="warning">{html.escape(w)}</p>' for w in q.warnings)
        + _table(q.table)
    )
    cov = pd.DataFrame(dict(k=coverage.k, coverage=coverage.mean, low=coverage.low, high=coverage.high))
    body["coverage"] = (
        _figure("fig-coverage", coverage_figure(coverage))
        + f"<p>pass@k (Chen et al. 2021, unbiased estimator) over {len(coverage.question_ids)} questions; "
        "band: 95% bootstrap over questions.</p>" + _table(cov)
    )
    body["strategies"] = _figure("fig-strategies", strategies_figure(cells)) + _table(
        cells[["configuration", "kind", "budget_flops", "budget_samples", "accuracy", "questions", "of_questions"]]
    )
    if cost is None:
        body["cost"] = (
            f"<p>No price is known for <code>{html.escape(study.model)}</code> (a run spec's models[].price_in_per_m "
            "and price_out_per_m, USD per 1M tokens), so no cost-of-pass is given.</p>"
        )
    else:
        body["cost"] = (
            _figure("fig-cost", cost_figure(cost))
            + "<p>cost-of-pass = cost per attempt / success rate (Erol et al. 2025); ∞ where nothing passes.</p>"
            + _table(cost[["strategy", "budget", "success_rate", "cost", "cost_of_pass"]])
        )
    tests = report[
        [
            "bin",
            "questions",
            "budget_samples",
            "held_out_accuracy",
            "baseline_accuracy",
            "vs_baseline_difference",
            "vs_baseline_ci_low",
            "vs_baseline_ci_high",
            "vs_baseline_p_value",
            "cv_lo",
            "cv_hi",
        ]
    ].assign(chosen=[_picks(r) for _, r in report.iterrows()])
    body["compute-optimal"] = (
        _figure("fig-heatmap", heatmap_figure(report))
        + _figure("fig-curves", curves_figure(report, baseline))
        + f"<p>Paired tests against <code>{html.escape(baseline)}</code> per bin and budget (difference, 95% paired "
        "bootstrap interval, p-value; cv_lo/cv_hi: the policy's bootstrap band with the choice re-made).</p>"
        + _table(tests)
    )
    acc = cells.pivot_table(index="configuration", columns="budget_samples", values="accuracy", sort=False)
    acc.columns = [f"≈ {b:.3g}" for b in acc.columns]
    body["configurations"] = (
        "<p>Accuracy over all questions at each budget (samples' FLOPs per question).</p>"
        + _table(acc.reset_index())
        + "".join(f"<p>Note: {html.escape(n)}</p>" for n in study.notes)
    )
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(_section(sid, title, body[sid]) for sid, title in SECTIONS)
    title = f"Study report: {', '.join(record.names)} on {study.model}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n"
        f"<script>{_plotly_js()}</script>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="meta">Written by ttc report on {made}.</p>\n'
        f"{sections}\n<script>{RENDER}</script>\n</body>\n</html>\n"
    )
