"""The Run page shows who holds each running run and its lease, on both catalog backends: the dashboard opens a
store whose catalog is on a PostgreSQL server from the store folder alone (the password from the environment)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from backend.config import parse_spec
from backend.execution.queue import claim_next
from store import Store
from tests.ui.conftest import APP

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _progress_texts(at: AppTest) -> list[str]:
    return [e.proto.text for e in at.get("progress")]


def test_the_run_page_shows_each_running_runs_worker_and_lease(monkeypatch, tmp_path, catalog):
    store = Store.open(tmp_path / "store", catalog=catalog)
    specs = [
        parse_spec(
            {
                "name": n,
                "models": ["gemma-3-270m"],
                "task": {"kind": "humaneval", "size": 1},
                "samples_per_question": 1,
                "seed": i,
            }
        )
        for i, n in enumerate(["held", "orphaned"])
    ]
    for s in specs:
        store.upsert_run(s.run_id(), s.name, s.model_dump(mode="json"), 1, "queued")
    claim_next(store, "box-4242-aaaaaa")
    claim_next(store, "box-99-bbbbbb")
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    with store.catalog.begin() as db:  # the second worker died: its lease ran out 5 s ago
        db.execute(text("UPDATE runs SET lease_expires_at = :t WHERE run_id = :r"), {"t": past, "r": specs[1].run_id()})
    monkeypatch.delenv("TTC_CATALOG_URL", raising=False)  # the store folder says where its catalog is
    monkeypatch.setenv("TTC_STORE", str(store.root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/run.py").run()
    assert not at.exception, [e.value for e in at.exception]
    texts = _progress_texts(at)
    held = next(t for t in texts if specs[0].run_id() in t)
    orphaned = next(t for t in texts if specs[1].run_id() in t)
    left = re.search(r" · worker box-4242-aaaaaa · lease (\d+) s$", held)
    assert left and 0 <= int(left.group(1)) <= 15, held  # 15 s at the claim
    assert orphaned.endswith(" · worker box-99-bbbbbb · lease expired: waiting for a worker")
