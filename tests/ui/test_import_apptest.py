"""An imported run is a run like any other: the analysis pages render it (AppTest), with its questions' samples
and no FLOPs where the format had no token counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from backend.importers.ingest import import_files, load_arch
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


def _page_texts(at) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.warning])


PAGES = [
    "app_pages/coverage.py",
    "app_pages/strategies.py",
    "app_pages/cost_of_pass.py",
    "app_pages/compute_optimal.py",
    "app_pages/samples.py",
]


@pytest.mark.parametrize("page", PAGES)
def test_every_analysis_page_renders_an_imported_run_without_tokens_or_flops(monkeypatch, imported_store, page):
    """Monkeys YAML holds no token counts and no parameter count was given: each page draws what it can and names,
    in one line, the axis it cannot draw and why."""
    root, run_id = imported_store
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run(timeout=300)
    at.switch_page(page).run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    texts = _page_texts(at)
    no_flops = (
        f"x in FLOPs: run {run_id} was imported from monkeys files without token counts (ttc import --tokenizer NAME "
        "recounts them)"
    )
    if page == "app_pages/samples.py":
        assert "not recorded" in [m.value for m in at.metric], [m.value for m in at.metric]
        return
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert figures, "no chart drawn"
    if page == "app_pages/cost_of_pass.py":
        assert f"cost of pass: run {run_id} was imported from monkeys files without token counts" in texts, texts
        assert any(f["layout"]["meta"]["y"] == "success_rate" for f in figures)
        return
    if page == "app_pages/compute_optimal.py":
        assert no_flops + ", and FLOPs are priced from them; budgets are in samples per question" in texts, texts
        assert "Not drawn: it matches FLOPs, and these runs have none" in texts
        titles = [f["layout"].get("xaxis", {}).get("title", {}).get("text") for f in figures]
        assert "budget (samples per question)" in titles, titles
        return
    # coverage, strategies: the FLOPs and tokens axes fall back to samples, each with its one line
    for unit, line in (("flops", no_flops), ("tokens", f"x in tokens: run {run_id} was imported from monkeys")):
        at.radio(key="x").set_value(unit).run(timeout=300)
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        assert line in _page_texts(at), _page_texts(at)
        figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        assert figures[0]["layout"]["meta"]["x"] == "samples_per_question", figures[0]["layout"]["meta"]


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


# every format but monkeys (above): its name, its fixture files (a glob under FIXTURES) and its importer options
OTHER_FORMATS = [
    ("inspect", "inspect.json", {}),
    ("search_and_learn", "best_of_n_completions.jsonl", {}),
    ("lm_eval", "lm_eval/*_20*.json*", {}),  # results_<ts>.json with samples_arith_rep_<ts>.jsonl
    ("generic", "generic_pool.jsonl", {}),
    ("openai_batch", "batch_*.jsonl", {"references": str(FIXTURES / "openai_batch_refs.jsonl")}),
]


@pytest.mark.parametrize(("fmt", "fixture", "options"), OTHER_FORMATS)
def test_the_analysis_pages_render_every_other_format_s_import(monkeypatch, tmp_path, fmt, fixture, options):
    """inspect, search-and-learn, generic and OpenAI Batch carry token counts (a parameter count prices FLOPs); the
    inspect log holds an errored and a limit-hit sample, the Batch errors file a failed request, search-and-learn's
    pool and the generic one a verifier's scores. lm-eval's samples have no token counts: the pages still draw,
    and Cost-of-pass says why it has no cost axis."""
    root = tmp_path / "store"
    paths = sorted(FIXTURES.glob(fixture))
    result = import_files(Store.open(root), fmt, paths, model="m", arch=load_arch(1_000_000_000, None), options=options)
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run(timeout=300)
    for page in PAGES:
        at.switch_page(page).run(timeout=300)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        if page != "app_pages/samples.py":
            assert at.get("plotly_chart"), f"{page}: no chart drawn"
        if fmt == "lm_eval" and page == "app_pages/cost_of_pass.py":
            line = f"cost of pass: run {result.run_id} was imported from lm_eval files without token counts"
            assert line in _page_texts(at), _page_texts(at)


def test_a_verifier_that_scored_only_another_run_is_not_offered(monkeypatch, tmp_path):
    """The store's generic run carries a verifier's scores, the inspect run none: with the inspect run alone
    selected, the pages offer no verifier (they used to default to the other run's and refuse to draw)."""
    root = tmp_path / "store"
    store = Store.open(root)
    runs = {}
    for fmt, fixture, options in OTHER_FORMATS:
        if fmt in ("inspect", "generic"):
            paths = sorted(FIXTURES.glob(fixture))
            runs[fmt] = import_files(store, fmt, paths, model=f"m-{fmt}", options=options).run_id
    assert store.query("SELECT count(*) n FROM scores WHERE run_id = ?", [runs["generic"]])["n"].iloc[0] > 0
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run(timeout=300)
    for page in ("app_pages/strategies.py", "app_pages/cost_of_pass.py", "app_pages/compute_optimal.py"):
        at.query_params["runs"] = runs["inspect"]
        at.switch_page(page).run(timeout=300)
        assert not at.exception and not at.error, (page, [e.value for e in [*at.exception, *at.error]])
        verifier = at.selectbox(key="verifier")
        assert verifier.options == ["(none)"] and verifier.value == "(none)", (page, verifier.options)
