"""The Run page's "Size this study" panel: `ttc plan` for the form's spec, from the store's pilot run."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP
from tests.unit.test_planning import MODEL, _mixed, _pilot_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _run_page(monkeypatch, store_dir) -> AppTest:
    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/run.py").run()
    return at


def test_plan_panel_recommends_from_the_stores_pilot(monkeypatch, tmp_path):
    correct, lengths, scores = _mixed()
    _pilot_store(tmp_path, correct, lengths, scores=scores)
    at = _run_page(monkeypatch, tmp_path)
    at.multiselect(key="run_models").set_value([MODEL]).run()
    at.button(key="plan").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) >= {"max_tokens", "samples per question", "questions needed"}
    text = at.code[0].value
    assert text.startswith(f"plan for dashboard-run on {MODEL}\npilot: 12 questions, 72 samples")
    assert f"max_tokens: {metrics['max_tokens'].split()[0]} (95% of finished completions" in text


def test_plan_panel_without_a_pilot_says_what_to_run(monkeypatch, tmp_path):
    from store import Store

    Store.open(tmp_path)
    at = _run_page(monkeypatch, tmp_path)
    at.button(key="plan").click().run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith("--pilot-store: ")
    assert not at.code
