"""Every shipped example spec parses (typos in examples are bugs too)."""

from pathlib import Path

import pytest

from backend.config import load_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_spec_is_valid(path):
    spec = load_spec(path)
    assert spec.samples_per_question >= 1 and spec.run_id().startswith(spec.name)
