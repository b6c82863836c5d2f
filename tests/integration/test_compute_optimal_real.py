"""examples/compute_optimal.yaml reduced to a few questions, on the real default model: the pool, beam search and a
revisions ratio sweep land in one accuracy table on the FLOPs axis, `ttc compute-optimal` prints configurations of
both kinds, and the Compute-optimal page draws beam search, revisions and best-of-N (AppTest and headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from store import Store
from tests.conftest import ttc

pytestmark = pytest.mark.real_model
ROOT = Path(__file__).resolve().parents[2]
NAMES = ("beam_search", "sequential_revisions", "best_of_n")


def reduced_spec() -> dict:
    """One question per difficulty level, 4 samples, two budgets; one beam search and a two-point ratio sweep."""
    spec = yaml.safe_load((ROOT / "examples" / "compute_optimal.yaml").read_text())
    spec["name"] = "compute-optimal-small"
    for d in spec["task"]["datasets"]:
        d["size"] = 1
    spec.update(samples_per_question=4, max_tokens=64, budgets=[1, 2])
    spec["engine"] = {**spec["engine"], "n_parallel": 4}
    beam = next(s for s in spec["strategies"] if s["name"] == "beam_search")
    beam["config"] = {**beam["config"], "max_tokens": 32, "max_rounds": 3}
    revisions = {"name": "sequential_revisions", "config": {"max_tokens": 64}, "ratios": ["1:0", "0:1"]}
    spec["strategies"] = [beam, revisions]
    return spec


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("co-real")
    spec_file = tmp / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(reduced_spec()))
    store = tmp / "store"
    out = ttc("run", str(spec_file), "--store", str(store), "--quiet", timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    return store


def test_the_reduced_study_stores_the_pool_the_searches_and_the_sweep(small_store):
    store = Store.open(small_store, create=False)
    configs = store.query("SELECT DISTINCT strategy, config FROM nodes")
    ratios = {
        json.loads(c).get("ratio")
        for s, c in zip(configs["strategy"], configs["config"])
        if s == "sequential_revisions"
    }
    assert ratios == {"1:0", "0:1"}
    assert set(configs["strategy"]) == {"beam_search", "sequential_revisions"}
    assert len(configs) == 2 * 3  # (beam + two sweep points) × two budgets
    # every search stays inside its budget on the real model too
    over = store.query(
        "SELECT question_id FROM nodes GROUP BY strategy, config, question_id "
        "HAVING sum(generator_flops + verifier_flops) > any_value(json_extract(config, '$.budget_flops')::DOUBLE)"
    )
    assert over.empty


def test_cli_prints_configurations_of_both_kinds(small_store):
    out = ttc("compute-optimal", "--store", str(small_store))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("bin,questions,budget_flops,budget_samples,chosen_fold0,chosen_fold1")
    listed = dict(line.strip().split("\t")[::-1] for line in out.stderr.splitlines() if line.startswith("  "))
    assert set(listed.values()) == {"pool", "search"}
    assert listed["best_of_n[self_verify]"] == "pool"
    assert any(c.startswith("sequential_revisions[seq:par=1:0") for c in listed) and any(
        c.startswith("beam_search") for c in listed
    )


def _heat_map(at) -> dict:
    return next(
        json.loads(c.proto.spec)["data"][0]
        for c in at.get("plotly_chart")
        if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap"
    )


def test_the_page_draws_beam_search_revisions_and_best_of_n_in_the_heat_map(small_store, monkeypatch):
    """Every cell's hover ranks every configuration on the whole bin; its text names the one chosen."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TTC_STORE", str(small_store))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/compute_optimal.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    heat = _heat_map(at)
    hover = "\n".join(str(cell) for row in heat["customdata"] for cell in row)
    for name in NAMES:
        assert name in hover, name
    assert {t for row in heat["text"] for t in row} - {"—"}  # a choice in at least one cell


def test_the_heat_map_in_headless_chromium(small_store):
    from bench.ui import CHROMIUM, chromium, load_page, page_problems, streamlit_server

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    with streamlit_server(small_store) as base, chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        load_page(page, base, "compute-optimal", "compute_optimal")
        assert page_problems(page) == []
        heat = page.locator(".js-plotly-plot").first
        cell = heat.locator(".heatmaplayer").first
        cell.wait_for(state="attached")
        cell.scroll_into_view_if_needed()  # the page opens with its answer per budget; the heat map is below it
        box = cell.bounding_box()
        page.mouse.move(
            box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5
        )  # the largest budget, a middle bin
        label = heat.locator(".hoverlayer").first
        page.wait_for_function("(el) => el.textContent.includes('every configuration')", arg=label.element_handle())
        text = label.text_content()
        for name in NAMES:
            assert name in text, (name, text)
