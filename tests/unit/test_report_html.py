"""`ttc report -o study.html`: one self-contained HTML file whose every section is there, which references nothing
outside itself, and whose charts draw the backend's own numbers (the study, the pool's coverage, cost-of-pass)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.metrics.cost import Price, cost_table, curve_cost_rows
from backend.metrics.coverage import coverage_curve
from backend.metrics.pools import load_pool
from backend.metrics.selection import selection_curves
from backend.report import headline
from backend.report_html import SECTIONS, build_report, markdown_inline, reading
from bench.synthetic_store import make_synthetic_store
from store import Store
from tests.ui.conftest import add_search_configurations

MODEL = "gemma-3-270m"
PRICE = Price(0.05, 0.20)
FIGURES = ("fig-coverage", "fig-strategies", "fig-cost", "fig-heatmap", "fig-curves")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html-report") / "store"
    make_synthetic_store(root, n_questions=40, n_samples=16, models=(MODEL,), n_trees=0, seed=3)
    add_search_configurations(root)
    return root


@pytest.fixture(scope="module")
def built(store_dir):
    """(html, the study the report opened, the pool) with a price for the model."""
    from backend.report import open_study

    store = Store.open(store_dir, create=False)
    con = store.connect()
    try:
        text = build_report(con, store.root, None, MODEL, prices={MODEL: PRICE}, n_bins=3)
        opened = open_study(con, store.root, None, MODEL, n_bins=3)
        verifier = opened.study.verifier
        pool = load_pool(con, list(opened.runs), MODEL, strategy="sample", verifiers=[verifier] if verifier else [])
    finally:
        con.close()
    return text, opened, pool


class _Tags(HTMLParser):
    """Every start tag with its attributes (a script's body is data to the parser, not markup)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(text)
    return p.tags


def figures(text: str) -> dict[str, dict]:
    """Each chart's Plotly spec, from its JSON block."""
    found = re.findall(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', text, re.S)
    return {fid: json.loads(spec.replace("<\\/", "</")) for fid, spec in found}


def _trace(fig: dict, name: str) -> dict:
    [t] = [t for t in fig["data"] if t.get("name") == name]
    return t


def _values(seq) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in seq], dtype=float)


def test_every_section_and_chart_is_there(built):
    text = built[0]
    ids = [a.get("id") for tag, a in _tags(text) if tag == "section"]
    assert ids == [sid for sid, _ in SECTIONS]
    for _, title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    divs = {a.get("id") for tag, a in _tags(text) if tag == "div" and a.get("class") == "chart"}
    assert divs == set(FIGURES) == set(figures(text))


def test_the_file_references_nothing_outside_itself(built):
    text = built[0]
    for tag, attrs in _tags(text):
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
        for key in ("src", "href", "data"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
        if tag == "script":
            assert "src" not in attrs  # plotly.js is inlined
    # outside the inlined plotly.js bundle (whose strings hold map-tile attribution links it never loads here)
    # no text names a remote resource either
    own = re.sub(r"<script>/\*\*\s*\n?\s*\* plotly\.js.*?</script>", "", text, count=1, flags=re.S)
    assert len(own) < len(text) / 10  # the bundle was found and cut out
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", own)
    assert "cdn." not in own.lower()


def test_the_charts_draw_the_backend_numbers(built):
    text, opened, pool = built
    figs = figures(text)
    study = opened.study
    report = study.report()

    cov = coverage_curve(pool)
    t = _trace(figs["fig-coverage"], "coverage")
    np.testing.assert_allclose(t["x"], cov.k)
    np.testing.assert_allclose(_values(t["y"]), cov.mean)

    cells = study.table.cells()
    drawn = [t for t in figs["fig-strategies"]["data"]]
    assert [t["hovertext"] for t in drawn] == list(study.table.configurations)
    for t in drawn:
        c = cells[cells["configuration"] == t["hovertext"]]
        np.testing.assert_allclose(t["x"], c["budget_flops"])
        np.testing.assert_allclose(_values(t["y"]), c["accuracy"])

    heat = figs["fig-heatmap"]["data"][0]
    levels = sorted(int(b) for b in report["bin"].unique() if b != "all")
    assert heat["y"] == [f"bin {lv}" for lv in levels]
    for lv, row in zip(levels, heat["z"]):
        r = report[report["bin"] == str(lv)].sort_values("budget_samples")
        np.testing.assert_allclose(_values(row), r["held_out_accuracy"])

    whole = report[report["bin"] == "all"].sort_values("budget_flops")
    np.testing.assert_allclose(
        _values(_trace(figs["fig-curves"], "compute-optimal (cross-validated)")["y"]), whole["held_out_accuracy"]
    )
    np.testing.assert_allclose(
        _values(_trace(figs["fig-curves"], study.result.baseline)["y"]), whole["baseline_accuracy"]
    )

    rows = pd.concat(
        [curve_cost_rows(MODEL, n, c, pool) for n, c in selection_curves(pool, study.verifier, draws=32).items()]
    )
    cost = cost_table(rows, {MODEL: PRICE})
    for rule, d in cost.groupby("strategy"):
        t = _trace(figs["fig-cost"], rule)
        np.testing.assert_allclose(t["x"], d["budget"])
        np.testing.assert_allclose(_values(t["y"]), d["cost_of_pass"].where(np.isfinite(d["cost_of_pass"])))


def test_the_reading_is_the_headline_and_one_paired_sentence_per_budget(built):
    text, opened, _ = built
    report, baseline = opened.study.report(), opened.study.result.baseline
    assert markdown_inline(headline(report, baseline)) in text
    lines = reading(report, baseline)
    whole = report[(report["bin"] == "all") & (report["vs_baseline_questions_paired"] > 0)]
    assert len(lines) == 1 + len(whole)
    last = whole.sort_values("budget_flops").iloc[-1]
    assert f"(interval {last['vs_baseline_ci_low']:+.2f} to {last['vs_baseline_ci_high']:+.2f}, " in lines[-1]
    assert f"p = {last['vs_baseline_p_value']:.2g})." in lines[-1]
    assert re.match(r"At ≈ \S+ samples' FLOPs the policy (beats|trails|ties) `", lines[-1])


def test_markdown_inline_escapes_html():
    assert markdown_inline("**a** `<b>` & c") == "<strong>a</strong> <code>&lt;b&gt;</code> &amp; c"


def test_ttc_report_writes_the_file(store_dir, tmp_path, capsys):
    out = tmp_path / "study.html"
    assert main(["report", "--store", str(store_dir), "--model", MODEL, "--n-bins", "3", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "No price is known for <code>gemma-3-270m</code>" in text  # the synthetic specs record no price
    assert set(figures(text)) == set(FIGURES) - {"fig-cost"}
    assert "study report written" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.part"))


def test_ttc_report_output_refuses_bad_combinations(store_dir, tmp_path, capsys):
    out = tmp_path / "nowhere" / "study.html"
    assert main(["report", "--store", str(store_dir), "--model", MODEL, "-o", str(out)]) == 2
    assert "--output" in capsys.readouterr().err and not out.parent.exists()
    readme = tmp_path / "R.md"
    readme.write_text("x")
    assert main(["report", "--refresh", str(readme), "-o", str(tmp_path / "s.html")]) == 2
    assert "--output: with --refresh" in capsys.readouterr().err
    assert not (tmp_path / "s.html").exists()


def test_the_heat_map_orders_bins_by_level_and_shows_each_folds_pick():
    from backend.report_html import heatmap_figure

    rows = [
        dict(
            bin=str(lv),
            budget_samples=b,
            held_out_accuracy=lv / 100 + b,
            chosen_fold0="majority",
            chosen_fold1="beam_search[n=4,width=2,verifier=prm-synthetic]" if lv == 10 else "majority",
        )
        for lv in range(1, 11)
        for b in (0.1, 0.2)
    ] + [dict(bin="all", budget_samples=0.1, held_out_accuracy=0.0, chosen_fold0=None, chosen_fold1=None)]
    heat = heatmap_figure(pd.DataFrame(rows)).data[0]
    assert list(heat.y) == [f"bin {lv}" for lv in range(1, 11)]
    np.testing.assert_allclose(np.asarray(heat.z)[:, 0], [lv / 100 + 0.1 for lv in range(1, 11)])
    assert heat.text[-1][0] == "majority<br>beam_search[n=4,width…"
    assert heat.hovertext[-1][0] == "majority / beam_search[n=4,width=2,verifier=prm-synthetic]"
    assert heat.text[0][0] == "majority"
