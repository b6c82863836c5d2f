"""The soak bench's 60-second variant: every dashboard read, every 100 ms, while a real worker writes and compacts
(bench/soak.py; the 10-minute figures are in BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from bench.soak import soak

pytestmark = pytest.mark.real_model


def test_dashboard_reads_never_fail_while_a_worker_writes_and_compacts(tmp_path):
    result = soak(tmp_path / "store", seconds=60, n_runs=12, min_compacted=2, deadline_s=300, log=lambda _m: None)
    assert result.errors == [], result.errors[:5]
    assert result.runs_compacted >= 2 and result.samples_written > 0, result.line()
    assert result.rounds > 0 and len(result.latencies_ms) == result.rounds * 10
