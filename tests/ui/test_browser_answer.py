"""Compute-optimal answers in one look, in a real browser (headless Debian Chromium, Playwright, `streamlit run
app.py`) at 1500×1100: which configuration wins at the largest budget, and whether that is significant, is read
from the first screen, without scrolling, and is the study's own answer (backend.report.budget_answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.synthetic_store import make_synthetic_store
from bench.ui import CHROMIUM, chromium, load_page, page_problems, streamlit_server
from tests.ui.conftest import SEARCH_VERIFIER, add_search_configurations

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1500, "height": 1100}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    root = tmp_path_factory.mktemp("answer") / "store"
    make_synthetic_store(root, n_questions=60, n_samples=32, seed=3)
    add_search_configurations(root)
    return root


def _expected(root: Path):
    """The answer at the largest budget for the page's default selection: the default runs, the first model, the
    first verifier, oracle bins at the page's bin count, draws and seed."""
    from app_pages._views import STUDY_BINS, STUDY_DRAWS, STUDY_SEED
    from backend.metrics.study import compute_optimal_study
    from backend.report import budget_answers
    from backend.run_selection import default_runs_of
    from store import Store

    con = Store.open(root, create=False).connect()
    try:
        runs = list(default_runs_of(con).run_ids)
        model = con.execute("SELECT min(model) FROM samples WHERE list_contains(?, run_id)", [runs]).fetchone()[0]
        study = compute_optimal_study(
            con, runs, model, verifier=SEARCH_VERIFIER, n_bins=STUDY_BINS, draws=STUDY_DRAWS, seed=STUDY_SEED
        )
    finally:
        con.close()
    return study, budget_answers(study)[-1]


def test_the_largest_budgets_winner_and_its_significance_are_on_the_first_screen(store_dir, tmp_path_factory):
    study, answer = _expected(store_dir)
    with streamlit_server(store_dir, tmp_path_factory.mktemp("logs") / "streamlit.log") as base, chromium() as ctx:
        page = ctx.new_page()
        page.set_viewport_size(VIEWPORT)
        page.set_default_timeout(60_000)
        load_page(page, base, "compute-optimal", "compute_optimal")
        assert page_problems(page) == []
        question = page.get_by_text("Which configuration wins at each budget", exact=False).first
        line = page.locator('[data-testid="stMarkdown"] li').filter(has_text="the policy picks").first
        assert page.evaluate("() => window.scrollY") == 0  # nothing scrolled
        for element in (question, line):
            box = element.bounding_box()
            assert box is not None
            inside = box["x"] >= 0 and box["y"] >= 0
            inside &= box["x"] + box["width"] <= VIEWPORT["width"] and box["y"] + box["height"] <= VIEWPORT["height"]
            assert inside, box  # on the first screen
        text = line.inner_text()
        assert text.startswith(f"At {answer.budget_flops:.3g} FLOPs"), text  # the largest budget, first
        if answer.winner is not None:
            assert f"picks {answer.winner} " in text, (answer.winner, text)
        else:  # each bin's pick, where no configuration is picked most
            r, b = study.result, len(study.table.budgets) - 1
            assert "no single configuration; per difficulty bin" in text, text
            for lv, f0, f1 in zip(r.levels, r.chosen_names(0)[:, b], r.chosen_names(1)[:, b]):
                assert (f"bin {int(lv)} {f0}" if f0 == f1 else f"bin {int(lv)} {f0} / {f1}") in text, text
        verdict = "not significant" if not answer.significant else "significant"
        assert f": {verdict} at α = 0.05" in text, text
        row = study.report().query("bin == 'all'").sort_values("budget_flops").iloc[-1]
        assert f"held-out accuracy {row['held_out_accuracy']:.2f}" in text
        assert f"p = {row['vs_baseline_p_value']:.2g}" in text
        page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "compute_optimal_first_screen.png"))
