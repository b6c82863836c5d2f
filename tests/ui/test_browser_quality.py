"""The data-quality warning in a real browser (headless Debian Chromium, Playwright, `streamlit run app.py`): on a
store with planted truncation above the threshold every analysis page shows it with its suggested max_tokens; on a
store whose samples all finish, no page does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app_pages import PAGES as APP_PAGES
from bench.synthetic_store import make_synthetic_store
from bench.ui import CHROMIUM, PAGES, chromium, load_page, page_problems, streamlit_server

pytestmark = pytest.mark.browser
ANALYSIS = [(url, name) for (url, name), p in zip(PAGES, APP_PAGES) if p.analysis]  # not Run, not Serving
SUGGESTION = re.compile(r"raise max_tokens to ≈ (\d+): the 95th percentile of finished completions is (\d+)")


def _store(tmp_path_factory, name: str, truncated: float) -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    root = tmp_path_factory.mktemp(name) / "store"
    make_synthetic_store(root, n_questions=30, n_samples=8, models=("gemma-3-270m",), n_trees=0, truncated=truncated)
    return root


def _warnings(page) -> list[str]:
    return [w.inner_text() for w in page.query_selector_all('[data-testid="stAlertContentWarning"]')]


def test_planted_truncation_is_warned_on_every_analysis_page(tmp_path_factory):
    store = _store(tmp_path_factory, "cut", truncated=0.3)
    with streamlit_server(store, tmp_path_factory.mktemp("logs") / "streamlit.log") as base, chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        for url_path, name in ANALYSIS:
            load_page(page, base, url_path, name)
            assert page_problems(page) == [], url_path
            cut = [w for w in _warnings(page) if "Samples cut at max_tokens" in w]
            assert len(cut) == 1, (url_path, _warnings(page))
            assert "more than 10%" in cut[0] and "at max_tokens = 512" in cut[0], cut[0]
            n, m = map(int, SUGGESTION.search(cut[0]).groups())
            assert m < 512 < n, cut[0]  # censoring: the suggestion is above the cap, the finished p95 below it


def test_no_truncation_warning_on_a_clean_store(tmp_path_factory):
    store = _store(tmp_path_factory, "clean", truncated=0.0)
    with streamlit_server(store, tmp_path_factory.mktemp("logs") / "streamlit.log") as base, chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        for url_path, name in ANALYSIS:
            load_page(page, base, url_path, name)
            assert page_problems(page) == [], url_path
            assert not [w for w in _warnings(page) if "max_tokens" in w], (url_path, _warnings(page))
            assert "(0%) cut at max_tokens" in page.inner_text("body"), url_path  # the strip is there, clean
