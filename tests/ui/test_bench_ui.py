"""bench/ui.py at a tiny size (a synthetic store of 2 models x 6 questions x 4 samples): every page opened,
reloaded and navigated in headless Chromium, the same script as BENCHMARKS.md's figure (tests/benches.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ui import CHROMIUM
from tests.benches import run

pytestmark = pytest.mark.browser


def test_ui_bench_runs_at_smoke_size(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    pytest.importorskip("playwright")
    ((slowest, report),) = run("ui", tmp_path)
    assert slowest > 0 and report > 0
