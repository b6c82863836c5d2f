"""The queue between dashboard and workers: a queued run that can no longer run fails with its reason, it is never
left queued or "running" with no worker behind it."""

from backend.config import parse_spec
from backend.execution.queue import claim_next
from backend.execution.workers import worker_loop
from store import Store

SPEC = dict(name="q", models=["gemma-3-270m"], task=dict(kind="humaneval", size=1), samples_per_question=1)


def test_a_spec_queued_by_an_older_version_fails_with_the_reason(tmp_path):
    store = Store.open(tmp_path / "s")
    legacy = SPEC | {
        "engine": {"kind": "llamacpp", "n_parallel": 4, "n_ctx_per_slot": 2048, "threads": None, "base_url": None}
    }
    store.upsert_run("q-old", "q", legacy, 1, "queued")
    fine = parse_spec(SPEC)
    store.upsert_run("q-renamed", "q", fine.model_dump(mode="json"), 1, "queued")  # its id is not its spec's hash
    assert claim_next(store, "w1") is None
    old, renamed = store.get_run("q-old"), store.get_run("q-renamed")
    assert old["status"] == "failed" and old["error"].startswith(
        "queued by another ttc-lab version: engine.base_url: unknown key"
    )
    assert renamed["status"] == "failed" and f"its run id is now {fine.run_id()}" in renamed["error"]


def test_a_run_whose_model_is_gone_fails_instead_of_hanging_as_running(tmp_path):
    store = Store.open(tmp_path / "s")
    spec = parse_spec(SPEC | {"models": ["/nowhere/model.gguf"]})
    store.upsert_run(spec.run_id(), "q", spec.model_dump(mode="json"), 1, "queued")
    assert worker_loop(store, once=True) == 1  # handled: claimed, and failed with its reason
    row = store.get_run(spec.run_id())
    assert row["status"] == "failed" and "/nowhere/model.gguf" in row["error"]


def test_a_run_claimed_before_leases_is_claimed_again_once_its_heartbeat_is_stale(tmp_path):
    """A catalog migrated while a run was running has no lease on it: its heartbeat stands in for one."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from store.store import HEARTBEAT_STALE_S

    store = Store.open(tmp_path / "s")
    spec = parse_spec(SPEC)
    store.upsert_run(spec.run_id(), "q", spec.model_dump(mode="json"), 1, "running")

    def beat(seconds_ago: float) -> None:
        at = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
        with store.catalog.begin() as db:
            db.execute(
                text("UPDATE runs SET heartbeat_at=:t, worker_pid=999999 WHERE run_id=:r"),
                {"t": at, "r": spec.run_id()},
            )

    beat(1.0)  # its worker is alive: nobody else takes it
    assert claim_next(store, "w1") is None
    beat(HEARTBEAT_STALE_S + 5)  # no heartbeat for longer than the limit: the worker is gone
    claimed = claim_next(store, "w2")
    assert claimed is not None and claimed.run_id() == spec.run_id()
    row = store.get_run(spec.run_id())
    assert row["status"] == "running" and row["worker_id"] == "w2" and row["attempts"] == 1
    assert claim_next(store, "w3") is None  # claimed once: its heartbeat is fresh again
