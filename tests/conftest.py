"""Shared fixtures. Real-model tests share the user's model cache (assembled once, sha256-verified)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ttc(*args: str, env: dict | None = None, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `ttc` CLI in a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned), or fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def write_spec(tmp_path):
    """Write a YAML spec (given as text) to a file and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session (tests/postgres.py). Without PostgreSQL's binaries the tests
    that need it skip, unless $TTC_REQUIRE_POSTGRES is set (scripts/test.sh sets it): then they fail, so the suite
    never passes by skipping them."""
    from tests.postgres import NoPostgres, start_server

    try:
        server = start_server()
    except NoPostgres as e:
        if os.environ.get("TTC_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required ($TTC_REQUIRE_POSTGRES): {e}")
        pytest.skip(str(e))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, monkeypatch):
    """Each catalog backend in turn: None for the store's own SQLite file, else the URL of a fresh PostgreSQL
    database (its password in PGPASSWORD, as a user would keep it)."""
    monkeypatch.delenv("TTC_CATALOG_URL", raising=False)
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    monkeypatch.setenv("PGPASSWORD", server.password)
    return server.url(server.create_database())
