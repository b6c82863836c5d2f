"""The worker banner on every page: a caption per live worker (its run, its heartbeat) when all is well, and the
"No worker is running" warning whose button starts one worker through the same atomic start as `ttc dashboard`."""

from __future__ import annotations

import os
import signal

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from backend.config import parse_spec
from backend.execution.workers import worker_table
from store import Store
from store.catalog import utcnow
from tests.conftest import wait_until
from tests.ui.conftest import APP

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAGE = "app_pages/coverage.py"


def _app(monkeypatch, store: Store) -> AppTest:
    monkeypatch.setenv("TTC_STORE", str(store.root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at.switch_page(PAGE).run()


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def test_banner_shows_each_live_worker_with_its_run_and_heartbeat(monkeypatch, tmp_path):
    store = Store.open(tmp_path / "store")
    store.upsert_run("demo-0123", "demo", {"name": "demo"}, 10, "running")
    now = utcnow()
    with store.catalog.begin() as db:  # catalog rows only: what a worker writes, without a process
        for worker_id, pid, run, beat in [
            ("box-4242-aaaaaa", 4242, "demo-0123", now),
            ("box-99-bbbbbb", 99, None, "2020-01-01T00:00:00+00:00"),  # lost long ago: not shown
        ]:
            db.execute(
                text(
                    "INSERT INTO workers(worker_id, pid, host, started_at, heartbeat_at, current_run_id)"
                    " VALUES (:w, :p, 'box', :beat, :beat, :r)"
                ),
                {"w": worker_id, "p": pid, "beat": beat, "r": run},
            )
    at = _app(monkeypatch, store)
    assert not at.exception, [e.value for e in at.exception]
    captions = _captions(at)
    assert ":material/memory: Worker box-4242: running demo · heartbeat " in captions
    assert " s ago" in captions and "box-99" not in captions
    assert not at.warning


def test_start_button_starts_one_worker_and_the_banner_then_shows_it(monkeypatch, tmp_path):
    store = Store.open(tmp_path / "store")
    spec = parse_spec(  # the worker claims it and fails it at once: no model is loaded
        {
            "name": "q",
            "models": ["/nowhere/model.gguf"],
            "task": {"kind": "humaneval", "size": 1},
            "samples_per_question": 1,
        }
    )
    store.upsert_run(spec.run_id(), "q", spec.model_dump(mode="json"), 1, "queued")
    at = _app(monkeypatch, store)
    try:
        assert "No worker is running" in at.warning[0].value
        at.button(key="_start_worker_banner").click().run()
        assert not at.exception, [e.value for e in at.exception]
        live = [w for w in worker_table(store) if w.live]
        assert len(live) == 1
        assert f"Worker {live[0].label}: " in _captions(at)
        # it is a real worker, serving the queue: it claims the run (running), then fails it (no such model). Wait
        # for the end state, not for "no longer queued": the run is briefly running in between.
        ended = wait_until(
            lambda: (status := store.get_run(spec.run_id())["status"]) not in ("queued", "running") and status,
            60,
            "the worker to claim and fail the run",
        )
        assert ended == "failed"
    finally:
        for w in worker_table(store):
            if w.stopped_at is None:
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
