"""Importing in a real browser: headless Chromium uploads llmonk's per-problem YAML files through the Run page's
Import panel (`streamlit run app.py` on an empty store), and every analysis page then draws the imported run — the
same run `ttc import monkeys` makes, with answers for the votes and no FLOPs (the format has no token counts). The
other formats' fixtures (inspect, search-and-learn, lm-eval, generic, OpenAI Batch), imported as `ttc import` does,
are each opened on every analysis page by a link naming their run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app_pages import PAGES as APP_PAGES
from bench.ui import CHROMIUM, PAGES, chromium, load_page, page_problems, streamlit_server, wait_ready
from tests.ui.test_import_apptest import FIXTURES, OTHER_FORMATS

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    root = tmp_path_factory.mktemp("import") / "store"
    from store import Store

    Store.open(root)
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with streamlit_server(root, log, start_timeout_s=600) as base:
        yield base, root


def _problems(folder: Path, n: int = 6, k: int = 5) -> list[Path]:
    """llmonk's layout: one YAML per problem; problem q's samples answer 2q (right) or 2q + 1 (wrong)."""
    folder.mkdir()
    out = []
    for q in range(n):
        answers = [2 * q + (i % (q % 3 + 2) == 0) for i in range(k)]
        doc = {"prompt": f"{q} + {q}?", "question": f"{q} + {q}?", "samples": [f"so #### {a}" for a in answers],
               "gt_answer": f"#### {2 * q}", "is_corrects": [a == 2 * q for a in answers]}  # fmt: skip
        out.append(folder / f"{q}.yaml")
        out[-1].write_text(yaml.dump(doc))
    return out


def test_upload_through_the_import_panel_then_every_page_draws_the_run(server, tmp_path):
    base, root = server
    files = _problems(tmp_path / "llmonk")
    with chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{base}/", wait_until="domcontentloaded")  # Run is the main page
        wait_ready(page, "run", timeout_s=600)
        page.get_by_text("Import samples made elsewhere").click()
        panel = page.locator('[data-testid="stExpander"]').filter(has_text="Import samples made elsewhere")
        panel.locator('[data-testid="stSelectbox"]').first.click()  # the Format selectbox: open it, pick the option
        page.get_by_role("option", name="monkeys", exact=True).click()
        wait_ready(page, "run")
        # the uploader for monkeys' file types (the generic one it replaces may linger for a moment)
        panel.locator('input[type="file"][accept*=".yaml"]').set_input_files([str(p) for p in files])
        page.get_by_text(files[-1].name).first.wait_for()
        dataset = panel.get_by_label("dataset", exact=True)
        dataset.fill("gsm8k")
        dataset.press("Enter")
        wait_ready(page, "run")
        panel.get_by_role("button", name="Import", exact=True).click()
        done = page.get_by_text(re.compile(r"30 samples of 6 questions imported"))
        done.wait_for(timeout=300_000)
        assert page_problems(page) == []
        for url_path, name in PAGES:
            if name == "run":
                continue
            load_page(page, base, url_path, name, timeout_s=600)
            assert page_problems(page) == [], (name, page_problems(page))
            assert "no samples yet" not in page.inner_text("body").lower(), name
    from store import Store

    n = Store.open(root, create=False).query("SELECT count(answer) n FROM samples")["n"].tolist()
    assert n == [30]  # every sample has its '#### n' answer


PLOTS_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].length > 0 &&
    [...document.querySelectorAll('.js-plotly-plot')].every((p) => p._fullLayout && p.querySelector('.main-svg'))"""


@pytest.fixture(scope="module")
def formats_server(tmp_path_factory):
    """One store holding a run of each other format (model `m-<format>`, a billion parameters to price FLOPs)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    from backend.importers.ingest import import_files, load_arch
    from store import Store

    root = tmp_path_factory.mktemp("formats") / "store"
    store = Store.open(root)
    runs = {}
    for fmt, fixture, options in OTHER_FORMATS:
        paths = sorted(FIXTURES.glob(fixture))
        arch = load_arch(1_000_000_000, None)
        runs[fmt] = import_files(store, fmt, paths, model=f"m-{fmt}", arch=arch, options=options).run_id
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with streamlit_server(root, log, start_timeout_s=600) as base:
        yield base, runs, store


@pytest.mark.parametrize("fmt", [f for f, _, _ in OTHER_FORMATS])
def test_every_analysis_page_draws_each_other_format_s_import(formats_server, fmt):
    """Coverage, Strategies, Cost-of-pass and Compute-optimal each draw a chart of the run and name its model, and
    Samples lists its samples, each opened by a link that selects that run alone; no page shows an exception or an
    error."""
    base, runs, store = formats_server
    run_id = runs[fmt]
    with chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        for entry in APP_PAGES:
            if not entry.analysis:
                continue
            name = entry.name
            link = f"run={run_id}" if name == "samples" else f"runs={run_id}"  # Samples reads one run at a time
            load_page(page, base, f"{entry.url_path}?{link}", name, timeout_s=600)
            assert page_problems(page) == [], (fmt, name, page_problems(page))
            errors = [e.inner_text() for e in page.query_selector_all('[data-testid="stAlertContentError"]')]
            assert errors == [], (fmt, name, errors)
            body = page.inner_text("body")
            assert "no samples yet" not in body.lower(), (fmt, name)
            if name == "samples":  # its grid is drawn on a canvas: the count above it says the run's samples are in it
                n = store.query("SELECT count(*) n FROM samples WHERE run_id = ?", [run_id])["n"].iloc[0]
                assert f"{n} sample(s) shown" in body, (fmt, n)
            else:
                assert f"m-{fmt}" in body, (fmt, name, "the run's model is not named on the page")
            if name != "samples":
                page.wait_for_function(PLOTS_DRAWN, timeout=120_000)
