"""Fixtures of the real-model tier."""

from __future__ import annotations

import pytest

from backend.errors import ModelFileError
from backend.models.registry import resolve_model


@pytest.fixture(scope="module")
def model():
    """The tiny shipped model (gemma-3-270m), resolved once per module; skips if its package is not installed."""
    try:
        return resolve_model("gemma-3-270m")
    except ModelFileError as e:
        pytest.skip(str(e))
