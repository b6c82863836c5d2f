"""An imported run is a run like any other: the analysis pages render it (AppTest), with its questions' samples
and no FLOPs where the format had no token counts."""

from __future__ import annotations

import json

import pytest
import yaml

from backend.importers.ingest import import_files
from store import Store
from tests.ui.conftest import APP, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def imported_store(tmp_path):
    """Eight Large Language Monkeys problems of 6 samples, in llmonk's YAML layout, imported into a fresh store."""
    folder = tmp_path / "llmonk"
    folder.mkdir()
    paths = []
    for q in range(8):
        doc = {
            "prompt": f"Question: {q} + {q}?\nAnswer:",
            "question": f"{q} + {q}?",
            "samples": [f"The answer is {2 * q + (i % 3 == 0)}. #### {2 * q + (i % 3 == 0)}" for i in range(6)],
            "gt_answer": f"#### {2 * q}",
            "is_corrects": [i % 3 != 0 or q % 4 == 0 for i in range(6)],
        }
        paths.append(folder / f"{q}.yaml")
        paths[-1].write_text(yaml.dump(doc))
    root = tmp_path / "store"
    result = import_files(Store.open(root), "monkeys", paths, model="llama-3-8b", options={"dataset": "gsm8k"})
    return root, result.run_id


def test_the_coverage_page_renders_an_imported_run(monkeypatch, imported_store):
    root, _run_id = imported_store
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run(timeout=300)  # a shared machine: the first run imports the dashboard
    at.switch_page("app_pages/coverage.py").run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert figures, "no chart drawn"
    names = {t.get("name") for f in figures for t in f["data"]}
    assert "coverage (oracle)" in names, names
    texts = "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.warning])
    assert "worker writes its first samples" not in texts
    assert "0 of 48 (0%) cut at max_tokens" in texts  # the data-quality strip counts the 8 × 6 imported samples
