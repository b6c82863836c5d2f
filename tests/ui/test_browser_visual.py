"""One visual language, checked where the user sees it: headless Debian Chromium (Playwright) opens every analysis
page of `streamlit run app.py` and reads the rendered Plotly figures (their `data`, `_fullLayout` and SVG):
a configuration has one colour on every page, no legend entry is longer than 40 characters, no axis title
overlaps its tick labels, log axes carry labels at decades only, FLOPs ticks read "100 G", and the charts follow
Streamlit's light and dark themes.

Runs on the synthetic store (two models, pool rules and searches); set TTC_VISUAL_STORE to a store of a real study
to check it too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app_pages import PAGES as APP_PAGES
from bench.synthetic_store import make_synthetic_store
from bench.ui import CHROMIUM, PAGES, chromium, load_page, page_problems, streamlit_server
from tests.ui.conftest import add_search_configurations

pytestmark = pytest.mark.browser
ANALYSIS = [(url, name) for (url, name), p in zip(PAGES, APP_PAGES) if p.analysis]  # not Run, not Serving
CHARTLESS = {"samples"}  # draws a chart only when a search tree is chosen
LABEL_MAX = 40

PLOTS_DRAWN = """(atLeast) => [...document.querySelectorAll('.js-plotly-plot')].length >= atLeast &&
    [...document.querySelectorAll('.js-plotly-plot')].every((p) => p._fullLayout && p.querySelector('.main-svg'))"""

# Per chart: the traces' configurations and colours, the legend's texts, every axis's type, ticks shown, and the
# bounding boxes of its title and tick labels.
READ_CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map((p) => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const fl = p._fullLayout;
  const axes = [];
  for (const kind of ['xaxis', 'yaxis']) {
    for (const id of (fl._subplots[kind] || [])) {
      const name = kind[0] + 'axis' + id.slice(1);
      const ax = fl[name];
      if (!ax || !ax.visible) continue;
      const title = p.querySelector('.g-' + id + 'title text');
      axes.push({
        name, type: ax.type,
        ticks: (ax._vals || []).filter((v) => v.text !== undefined && !v.minor).map((v) => [v.x, v.text]),
        minor: (ax._vals || []).filter((v) => v.minor && v.text).length,
        title: title && title.textContent ? box(title) : null,
        titleText: title ? title.textContent : '',
        labels: [...p.querySelectorAll('.' + id + 'tick text')].filter((t) => t.textContent).map(box),
      });
    }
  }
  return {
    title: (fl.title && fl.title.text) || '',
    background: fl.paper_bgcolor, font: fl.font.color,
    page: getComputedStyle(document.querySelector('.stApp') || document.body).backgroundColor,
    traces: p.data.map((t) => ({name: t.name || '', meta: t.meta || null,
                                color: (t.line && t.line.color) || null, showlegend: t.showlegend})),
    legend: [...p.querySelectorAll('.legendtext')].map((t) => t.textContent),
    axes,
  };
})"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[Path]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    root = tmp_path_factory.mktemp("visual") / "store"
    make_synthetic_store(root, n_questions=40, n_samples=16, seed=1)
    add_search_configurations(root)
    extra = os.environ.get("TTC_VISUAL_STORE")
    return [root] + ([Path(extra)] if extra else [])


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _read_pages(store: Path, logs: Path, query: str, env: dict | None = None) -> dict[str, list[dict]]:
    out = {}
    with streamlit_server(store, logs / "streamlit.log", env=env) as base, chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        for url_path, name in ANALYSIS:
            load_page(page, base, f"{url_path}?{query}" if query else url_path, name)
            assert page_problems(page) == [], url_path
            page.wait_for_function(PLOTS_DRAWN, arg=0 if name in CHARTLESS else 1)
            out[name] = page.evaluate(READ_CHARTS)
    return out


def _rgba(css: str) -> list[float]:
    if css.startswith("#"):
        return [int(css[i : i + 2], 16) for i in (1, 3, 5)] + [1.0]
    values = [float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")]
    return values + [1.0] * (4 - len(values))


def _luminance(css: str) -> float:
    """Relative brightness (0 black .. 1 white) of an `rgb(...)`, `rgba(...)` or `#rrggbb` colour."""
    r, g, b, _ = _rgba(css)
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


# the light theme on the samples axis (k from 1); the dark theme on the FLOPs axis (engineering-notation ticks)
@pytest.mark.parametrize(("x", "theme"), [("samples", "light"), ("flops", "dark")])
def test_every_analysis_page_speaks_one_visual_language(stores, tmp_path_factory, x, theme):
    for store in stores:
        logs = tmp_path_factory.mktemp("logs")
        charts = _read_pages(store, logs, f"x={x}", env={"STREAMLIT_THEME_BASE": theme})
        colours: dict[str, set] = {}
        n_log = 0
        for page, figs in charts.items():
            assert figs or page in CHARTLESS, page
            for fig in figs:
                where = (store.name, page, fig["title"])
                shown = fig["background"] if _rgba(fig["background"])[3] > 0 else fig["page"]  # transparent: the page's
                dark = _luminance(shown) < 0.5
                assert dark == (theme == "dark") and abs(_luminance(fig["font"]) - _luminance(shown)) > 0.3, (
                    where,
                    fig,
                )
                for t in fig["traces"]:
                    meta = t["meta"]
                    if isinstance(meta, dict) and meta.get("configuration") and t["color"]:
                        colours.setdefault(meta["configuration"], set()).add(t["color"])
                long = [s for s in fig["legend"] if len(s) > LABEL_MAX]
                assert not long, (where, long)
                for ax in fig["axes"]:
                    boxes = ax["labels"]
                    if ax["title"]:
                        hit = [b for b in boxes if _overlaps(ax["title"], b)]
                        assert not hit, (where, ax["name"], ax["title"], hit)
                    if ax["type"] == "log":
                        n_log += 1
                        assert ax["minor"] == 0, (where, ax["name"])
                        positions = [v for v, _ in ax["ticks"]]
                        # plotly's log-axis tick positions are log10 values: decades are whole numbers
                        assert positions and all(abs(v - round(v)) < 1e-9 for v in positions), (where, ax)
                        if x == "samples" and page in ("coverage", "cost_of_pass") and ax["name"] == "xaxis":
                            assert min(positions) >= 0, (where, ax["ticks"])  # no tick left of k = 1
                        if "FLOPs" in ax["titleText"]:
                            assert all(t.split()[-1] in {"k", "M", "G", "T", "P"} for _, t in ax["ticks"]), ax
        assert n_log >= 4, charts.keys()
        mixed = {c: v for c, v in colours.items() if len(v) != 1}
        assert not mixed, mixed
        assert len(colours) >= 5 and len({c for v in colours.values() for c in v}) >= 5, colours
