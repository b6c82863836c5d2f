"""The data-quality strip on every analysis page (AppTest): on a store with planted truncation above the threshold
each page warns, with the suggested max_tokens; on the populated store, whose samples all finish, no page does."""

from __future__ import annotations

import re

import pytest

from app_pages import PAGES as APP_PAGES
from bench.synthetic_store import make_synthetic_store
from tests.ui.conftest import ROOT, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ANALYSIS = [p.path for p in APP_PAGES if p.analysis]


@pytest.fixture(scope="module")
def truncated_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("truncated") / "store"
    make_synthetic_store(root, n_questions=30, n_samples=8, models=("gemma-3-270m",), n_trees=0, truncated=0.3)
    return root


def _page(monkeypatch, store_dir, page: str):
    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = app_test(ROOT / page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.parametrize("page", ANALYSIS)
def test_planted_truncation_warns_with_the_suggested_max_tokens(monkeypatch, truncated_store, page):
    at = _page(monkeypatch, truncated_store, page)
    cut = [w.value for w in at.warning if "Samples cut at max_tokens" in w.value]
    assert len(cut) == 1, [w.value for w in at.warning]
    assert "more than 10%" in cut[0] and "counts as wrong" in cut[0]
    assert "at max_tokens = 512 — raise max_tokens to ≈ " in cut[0]
    assert "the 95th percentile of finished completions is " in cut[0]
    assert any(c.value.startswith(":material/fact_check: data quality: ") for c in at.caption)
    if page.endswith("compute_optimal.py"):
        assert re.search(r" · bin \d+: \d+ of ", cut[0])  # the page bins: so does its strip


@pytest.mark.parametrize("page", ANALYSIS)
def test_no_truncation_warning_on_a_store_whose_samples_finish(monkeypatch, populated_store, page):
    at = _page(monkeypatch, populated_store, page)
    assert not [w.value for w in at.warning if "max_tokens" in w.value]
    caption = [c.value for c in at.caption if "data quality:" in c.value]
    assert len(caption) == 1 and " 0 of " in caption[0] and "(0%) cut at max_tokens" in caption[0], caption
