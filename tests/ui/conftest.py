"""Fixtures for the dashboard tests: a small synthetic store (the real schema, written through Store) with
budgeted search configurations next to the sampling pools, and an empty one, selected for the app through
$TTC_STORE as `ttc dashboard` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_pages import PAGES as APP_PAGES
from bench.synthetic_store import make_synthetic_store, search_configuration_table

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = [p.path for p in APP_PAGES]
SEARCH_VERIFIER = "prm-synthetic"


def add_search_configurations(root: Path) -> None:
    """For every model of the store (whichever a page defaults to): beam search, lookahead and two
    sequential-revisions sweep points at three FLOP budgets from the pool's own grid, each search the best
    somewhere, so the compute-optimal heat map picks searches and pool rules alike: revisions at 1:1 solve the
    hardest fifth of the questions (by pool pass@1) and at 3:1 half of those, beam search the next fifth,
    lookahead the middle fifth but cannot afford a round at the smallest budget."""
    from store import Store

    store = Store.open(root, create=False)
    for model in store.query("SELECT DISTINCT model FROM samples ORDER BY 1")["model"]:
        _add_searches(store, model)


def _add_searches(store, model: str) -> None:
    from backend.metrics.study import compute_optimal_study

    run_id = store.query("SELECT DISTINCT run_id FROM samples WHERE model = ?", [model])["run_id"].iloc[0]
    p1 = store.query(
        "SELECT question_id, avg(correct::INT) AS p FROM samples WHERE model = ? GROUP BY 1 ORDER BY p, question_id",
        [model],
    )
    con = store.connect()
    try:
        grid = compute_optimal_study(con, [run_id], model, verifier=SEARCH_VERIFIER, draws=4).table.budgets
    finally:
        con.close()
    budgets = {"low": float(grid[1]), "mid": float(grid[2]), "high": float(grid[4])}
    qids = p1["question_id"].tolist()
    fifth = np.array_split(np.arange(len(qids)), 5)  # hardest first
    configurations = [  # (strategy, record, the questions it solves)
        ("beam_search", {"n": 4, "width": 2, "verifier": SEARCH_VERIFIER}, fifth[1]),
        ("lookahead", {"n": 4, "width": 2, "verifier": SEARCH_VERIFIER}, fifth[2]),
        (
            "sequential_revisions",
            {"ratio": "1:1", "chains": 2, "chain_length": 2, "verifier": SEARCH_VERIFIER},
            fifth[0],
        ),
        (
            "sequential_revisions",
            {"ratio": "3:1", "chains": 1, "chain_length": 4, "verifier": SEARCH_VERIFIER},
            fifth[0][::2],
        ),
    ]
    for strategy, record, solved in configurations:
        correct = {q: i in set(solved.tolist()) for i, q in enumerate(qids)}
        for name, b in budgets.items():
            unaffordable = qids if strategy == "lookahead" and name == "low" else ()
            store.write_shard(
                "nodes",
                run_id,
                search_configuration_table(run_id, model, strategy, record, b, correct, unaffordable=unaffordable),
            )


_COMPONENTS = []  # one scan of the installed packages for Streamlit components, shared by every AppTest


def app_test(script: str | Path) -> AppTest:
    """An AppTest of `script` (app.py, or a page opened directly as a link opens it) that reuses one scan for
    custom components: AppTest otherwise reads every installed package's metadata per instance (~2 s on 2 cores)."""
    from streamlit.components.v2.component_manager import BidiComponentManager

    at = AppTest.from_file(str(script), default_timeout=120)
    if hasattr(at, "_bidi_component_manager"):  # a private attribute: without it, each AppTest scans for itself
        if not _COMPONENTS:
            manager = BidiComponentManager()
            manager.discover_and_register_components(start_file_watching=False)
            _COMPONENTS.append(manager)
        at._bidi_component_manager = _COMPONENTS[0]
    return at


@pytest.fixture(scope="session")
def populated_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("populated") / "store"
    make_synthetic_store(root, n_questions=40, n_samples=16, seed=1)
    add_search_configurations(root)
    return root


@pytest.fixture
def empty_store(tmp_path) -> Path:
    return tmp_path / "no-store-yet"
