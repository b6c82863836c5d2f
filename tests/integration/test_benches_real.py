"""The benches that generate with a shipped model (bench/adaptive, fanout, forecast, ledger_audit, search, serve,
soak, throughput, verifier_quality), each at a tiny size: the same script and code path as the figures in BENCHMARKS.md,
a few samples of a few tokens (tests/benches.py). A bench whose model is not installed skips."""

from __future__ import annotations

import pytest

from backend.errors import ModelFileError
from backend.models.registry import DEFAULT_MODEL, resolve_model
from tests.benches import SMOKE, of_tier, run

pytestmark = pytest.mark.real_model
MODELS = {"soak": "gemma-3-270m"}  # the others run the default model


@pytest.mark.parametrize("name", of_tier("real_model"))
def test_bench_runs_at_smoke_size(name, tmp_path):
    try:
        resolve_model(MODELS.get(name, DEFAULT_MODEL))
    except ModelFileError as e:
        pytest.skip(str(e))
    if name == "fanout":
        pytest.importorskip("ray")
    lines = run(name, tmp_path)
    assert len(lines) == len(SMOKE[name].results)
    if name == "search":  # beam search made one generator call per round and the ledger matched the recount
        calls_per_round, hit, _ = lines[0]
        assert calls_per_round > 0 and 0 <= hit <= 1
