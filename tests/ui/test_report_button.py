"""The "Download report" button on every analysis page (AppTest): it is there, and clicking it gives the report
`ttc report -o` writes for the page's runs and model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from app_pages import PAGES as APP_PAGES
from tests.ui.conftest import ROOT, SEARCH_VERIFIER, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ANALYSIS = [p.path for p in APP_PAGES if p.analysis]


def _written_on(text: str) -> str:
    return re.sub(r"Written by ttc report on [^<]+\.", "", text)


@pytest.mark.parametrize("page", ANALYSIS)
def test_every_analysis_page_offers_the_study_report(monkeypatch, populated_store, page):
    from backend.report_html import build_report
    from store import Store

    made = {}  # deferred file id -> the callable the button runs when clicked
    original = MediaFileManager.add_deferred

    def record(self, data_callable, *args, **kwargs):
        file_id = original(self, data_callable, *args, **kwargs)
        made[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    monkeypatch.setenv("TTC_STORE", str(populated_store))
    at = app_test(ROOT / page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    buttons = [b for b in at.get("download_button") if b.proto.label == "Download report"]
    assert len(buttons) == 1
    text = made[buttons[0].proto.deferred_file_id]()
    assert text.startswith("<!DOCTYPE html>") and 'id="compute-optimal"' in text
    # Coverage: the default runs, both models, the report on the first; Compute-optimal hands the report its own
    # study (its first verifier, oracle bins, 5 of them): either way the file is the one built from scratch
    arguments = {
        "coverage.py": {},
        "compute_optimal.py": dict(verifier=SEARCH_VERIFIER, bins="oracle", n_bins=5),
    }.get(Path(page).name)
    if arguments is not None:
        store = Store.open(populated_store, create=False)
        con = store.connect()
        try:
            runs = sorted(store.query("SELECT DISTINCT run_id FROM samples")["run_id"])
            model = sorted(store.query("SELECT DISTINCT model FROM samples")["model"])[0]
            expected = build_report(con, store.root, runs, model, **arguments)
        finally:
            con.close()
        assert f"on {model}</title>" in text
        assert _written_on(text) == _written_on(expected)
