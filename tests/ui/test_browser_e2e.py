"""The dashboard in a real browser: headless Debian Chromium driven by Playwright against `streamlit run app.py`
and a real `ttc worker`, both started on a populated store in tmp_path and killed afterwards.

Opens every page (no exception, no traceback; a screenshot of each into $TTC_SCREENSHOT_DIR or a temp folder), launches a small real
run from the Run page (gemma-3-270m, 2 questions × 2 samples, 16 tokens), waits for its progress to reach 100%,
downloads a PNG chart, the chart's CSV and a CSV table, checking their bytes, copies the page's link, and checks that the Compute-optimal heat map chooses
among searches (beam search, sequential revisions) and pool rules (best-of-N) alike."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from bench.synthetic_store import make_synthetic_store
from bench.ui import CHROMIUM, PAGES, chromium, load_page, page_problems, streamlit_server, wait_ready
from tests.ui.conftest import add_search_configurations

pytestmark = [pytest.mark.browser, pytest.mark.real_model]
ROOT = Path(__file__).resolve().parents[2]
# where the page screenshots go: a temp folder, so a test run never rewrites tracked files; to refresh the
# README's pictures: TTC_SCREENSHOT_DIR=docs/screenshots ./scripts/test.sh tests/ui/test_browser_e2e.py
SCREENSHOTS = Path(os.environ.get("TTC_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "ttc-screenshots").resolve()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    root = tmp_path_factory.mktemp("e2e") / "store"
    make_synthetic_store(root, n_questions=60, n_samples=32, seed=3)
    add_search_configurations(root)
    return root


@pytest.fixture(scope="module")
def worker(store_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "worker", "--store", str(store_dir)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(store_dir, worker, tmp_path_factory):
    with streamlit_server(store_dir, tmp_path_factory.mktemp("logs") / "streamlit.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser(server):
    with chromium(downloads=True) as ctx:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        yield page


PLOTS_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].every(
    (plot) => plot._fullLayout && plot.querySelector('.main-svg'))"""
"""Plotly sets `_fullLayout` on a chart's element once it has laid it out and drawn its SVG."""


def test_every_page_renders_and_is_screenshotted(server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for url_path, name in PAGES:
        load_page(browser, server, url_path, name)
        browser.wait_for_function(PLOTS_DRAWN)  # every chart drawn before the screenshot
        assert page_problems(browser) == [], url_path
        browser.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 20_000


def test_compute_optimal_heat_map_picks_searches_and_pool_rules(server, browser):
    load_page(browser, server, "compute-optimal", "compute_optimal")
    heat = browser.locator(".js-plotly-plot").first
    heat.locator(".heatmaplayer").first.wait_for(state="attached")
    cells = [re.match(r"[a-z_]*", t).group(0) for t in heat.locator("text").all_text_contents()]  # name, then accuracy
    assert {"beam_search", "sequential_revisions"} <= set(cells), cells  # searches and pool rules side by side
    assert set(cells) & {"majority", "best_of_n", "deepconf_weighted", "deepconf_filtered"}, cells
    assert page_problems(browser) == []


def _set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def test_launch_a_real_run_and_watch_it_finish(server, browser):
    query = "run_models=gemma-3-270m&suite=reasoning_gym&datasets=basic_arithmetic"
    browser.goto(f"{server}/?{query}", wait_until="domcontentloaded")
    wait_ready(browser, "run")
    config = browser.get_by_label("Config (JSON)", exact=True)
    config.fill(json.dumps({"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}))
    config.press("Control+Enter")
    wait_ready(browser, "run")
    browser.get_by_label("Run name", exact=True).fill("e2e-browser")
    browser.get_by_label("Run name", exact=True).press("Enter")
    for label, value in (("Questions", 2), ("Samples per question", 2), ("Max tokens", 16), ("n_parallel", 2)):
        _set_number(browser, label, value)
        wait_ready(browser, "run")
    browser.get_by_role("button", name=re.compile("Queue run")).click()
    queued = browser.get_by_text(re.compile(r"Queued run e2e-browser-\w+"))
    queued.wait_for(timeout=120_000)
    run_id = re.search(r"(e2e-browser-\w+)", queued.inner_text()).group(1)
    # the progress fragment refreshes every 2 s; the worker loads gemma and writes 4 samples
    final = browser.get_by_text(re.compile(rf"{run_id} · (done|failed|cancelled)")).first
    final.wait_for(timeout=240_000)
    assert f"{run_id} · done · 4/4 samples" in final.inner_text(), browser.inner_text("body")[-2000:]
    assert page_problems(browser) == []
    browser.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)


def test_download_png_chart_and_csv_table(server, browser, store_dir, tmp_path):
    from store import Store

    # the synthetic study's runs: the Run page's test queued a newer 2-question run, which the page's default
    # selection (the newest finished run's questions) would show alone
    runs = Store.open(store_dir, create=False).query(
        "SELECT DISTINCT run_id FROM samples WHERE run_id LIKE 'synthetic-%' ORDER BY 1"
    )["run_id"]
    load_page(browser, server, "coverage?" + "&".join(f"runs={r}" for r in runs), "coverage")
    with browser.expect_download(timeout=120_000) as dl:
        browser.locator(".st-key-dl_coverage_png button").click()
    png = Path(dl.value.path()).read_bytes()
    assert dl.value.suggested_filename == "coverage.png"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    with browser.expect_download(timeout=60_000) as dl:  # the chart's own CSV: what it plots, with units
        browser.locator(".st-key-dl_coverage_csv button").click()
    assert dl.value.suggested_filename == "coverage.csv"
    plotted = pd.read_csv(io.BytesIO(Path(dl.value.path()).read_bytes()))
    assert {"series", "model", "configuration", "kind", "strategy", "k", "samples_per_question", "coverage"} <= set(
        plotted.columns
    )
    assert {"pool", "forecast"} <= set(plotted["kind"]) and "sample" not in set(plotted["strategy"])
    browser.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = browser.locator("#ttc-copy-link")
    copy.click()
    browser.wait_for_function("() => document.getElementById('ttc-copy-link').dataset.copied !== undefined")
    assert copy.get_attribute("data-copied") == browser.url and "runs=" in browser.url
    assert browser.evaluate("() => navigator.clipboard.readText()") == browser.url
    browser.get_by_text("Coverage data").click()
    # the grid draws only once the expander is open, above the buttons: click when it is drawn and the button is
    # in view, so nothing moves the button under the click
    csv_button = browser.locator(".st-key-dl_coverage-table_csv button")
    expander = browser.locator('[data-testid="stExpander"]', has=csv_button)
    expander.locator('[data-testid="data-grid-canvas"]').wait_for(state="visible")
    csv_button.scroll_into_view_if_needed()
    try:
        with browser.expect_download(timeout=60_000) as dl:
            csv_button.click()
    except Exception as e:  # say what the button showed (a deferred-download error appears beside it)
        shown = [el.inner_text() for el in browser.query_selector_all('[data-testid="stDownloadButtonError"]')]
        raise AssertionError(f"no CSV download after the click; the page shows {shown}") from e
    df = pd.read_csv(io.BytesIO(Path(dl.value.path()).read_bytes()))
    assert list(df.columns) == ["model", "strategy", "k", "x", "coverage", "low", "high"]
    assert len(df) > 5 and df["coverage"].between(0, 1).all()
