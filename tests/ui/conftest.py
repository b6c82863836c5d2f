"""Fixtures for the dashboard tests: a small synthetic store (the real schema, written through Store) and an
empty one, selected for the app through $TTC_STORE as `ttc dashboard` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.synthetic_store import make_synthetic_store

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = [
    "app_pages/run.py",
    "app_pages/coverage.py",
    "app_pages/strategies.py",
    "app_pages/cost_of_pass.py",
    "app_pages/compute_optimal.py",
    "app_pages/samples.py",
]


@pytest.fixture(scope="session")
def populated_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("populated") / "store"
    make_synthetic_store(root, n_questions=40, n_samples=16, seed=1)
    return root


@pytest.fixture
def empty_store(tmp_path) -> Path:
    return tmp_path / "no-store-yet"
