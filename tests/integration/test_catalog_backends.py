"""The catalog on both backends (the store's SQLite file and a real PostgreSQL server): the same named migrations
give the same schema; concurrent claims take every run exactly once; leases expire, are taken over, and a worker
that lost its lease writes nothing more; a server catalog is bound to its store folder and its password is never
written."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from sqlalchemy import inspect, text

from backend.config import parse_spec
from backend.errors import StoreError
from backend.execution.queue import claim_next
from store import Store
from store.catalog import POINTER_FILE, read_pointer
from store.leases import LeaseLost, RunBusy
from store.migrations import MIGRATIONS
from store.schema import TABLES

SPEC = dict(models=["gemma-3-270m"], task=dict(kind="humaneval", size=1), samples_per_question=1)


def _queue(store: Store, n: int) -> list[str]:
    ids = []
    for i in range(n):
        spec = parse_spec(SPEC | {"name": f"r{i}"})
        store.upsert_run(spec.run_id(), spec.name, spec.model_dump(mode="json"), 1, "queued")
        ids.append(spec.run_id())
    return ids


def _schema(store: Store) -> dict:
    insp = inspect(store.catalog)
    # PostgreSQL spells the same types in capitals too; both must match the pinned SQLite schema exactly
    return {t: {c["name"]: str(c["type"]).upper() for c in insp.get_columns(t)} for t in insp.get_table_names()}


def test_the_same_migrations_give_the_same_schema_on_both_backends(tmp_path, catalog):
    sqlite = Store.open(tmp_path / "lite")
    store = Store.open(tmp_path / "s", catalog=catalog)
    assert _schema(store) == _schema(sqlite)
    with store.catalog.connect() as db:
        applied = [r[0] for r in db.execute(text("SELECT name FROM _migrations ORDER BY name"))]
        store_id = db.execute(text("SELECT value FROM store_meta WHERE key = 'store_id'")).scalar_one()
    assert applied == [n for n, _ in MIGRATIONS]
    assert len(store_id) == 32
    reopened = Store.open(tmp_path / "s", catalog=catalog)  # nothing applied twice
    with reopened.catalog.connect() as db:
        assert db.execute(text("SELECT count(*) FROM _migrations")).scalar_one() == len(MIGRATIONS)


def test_eight_concurrent_claimers_take_every_run_exactly_once(tmp_path, catalog):
    store = Store.open(tmp_path / "s", catalog=catalog)
    ids = _queue(store, 10)
    taken: dict[str, list[str]] = {}
    lock = threading.Lock()
    start = threading.Barrier(8, timeout=60)  # a claimer that fails breaks the barrier instead of hanging the rest

    def claimer(k: int) -> None:
        own = Store.open(tmp_path / "s", catalog=catalog)  # its own connections, as a separate worker has
        start.wait()
        while (spec := claim_next(own, f"w{k}")) is not None:
            with lock:
                taken.setdefault(spec.run_id(), []).append(f"w{k}")

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(taken) == sorted(ids)
    assert all(len(holders) == 1 for holders in taken.values()), taken
    rows = {r["run_id"]: r for r in store.runs_arrow().to_pylist()}
    assert all(rows[i]["status"] == "running" and rows[i]["worker_id"] == taken[i][0] for i in ids)
    assert all(rows[i]["attempts"] == 1 and rows[i]["lease_expires_at"] > rows[i]["heartbeat_at"] for i in ids)


def _expire(store: Store, run_id: str) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    with store.catalog.begin() as db:
        db.execute(text("UPDATE runs SET lease_expires_at = :t WHERE run_id = :r"), {"t": past, "r": run_id})


def _sample(run_id: str, i: int) -> pa.Table:
    row = {f.name: None for f in TABLES["samples"]} | {"run_id": run_id, "question_id": "q", "sample_idx": i}
    return pa.Table.from_pylist([row], schema=TABLES["samples"])


def test_a_lease_is_exclusive_until_it_expires_then_its_old_holder_writes_nothing(tmp_path, catalog):
    store = Store.open(tmp_path / "s", catalog=catalog)
    (run_id,) = _queue(store, 1)
    spec = store.get_run(run_id)
    body = json.loads(spec["spec_json"])
    assert claim_next(store, "a") is not None
    lease_a = store.claim_run(run_id, "r0", body, 1, "a")  # the same holder takes it again (the worker's execute)
    assert not lease_a.renew() and not lease_a.lost.is_set()
    with pytest.raises(RunBusy, match=rf"run {run_id} is already running \(worker a on .*, lease until .*\); wait"):
        store.claim_run(run_id, "r0", body, 1, "b")
    assert claim_next(store, "b") is None  # a live lease: not claimable

    _expire(store, run_id)  # a's worker stopped renewing (paused, cut off)
    assert claim_next(store, "b").run_id() == run_id
    row = store.get_run(run_id)
    assert (row["worker_id"], row["attempts"], row["spec_json"]) == ("b", 2, spec["spec_json"])

    lease_a.renew()  # a comes back: the run is b's now
    assert lease_a.lost.is_set()
    with store.fenced(run_id, lease_a.check), pytest.raises(LeaseLost, match="another worker holds it now"):
        store.write_shard("samples", run_id, _sample(run_id, 0))
    assert not (tmp_path / "s" / "samples" / run_id).exists() or not any(
        (tmp_path / "s" / "samples" / run_id).glob("*.parquet")
    )
    store.finish_run(run_id, "failed", "a's view", holder="a")  # a cannot end b's run either
    assert not store.requeue_run(run_id, "a")
    assert store.get_run(run_id)["status"] == "running"
    store.finish_run(run_id, "done", holder="b")
    assert store.get_run(run_id)["status"] == "done" and store.get_run(run_id)["lease_expires_at"] is None


def test_a_cancel_asked_of_a_dead_workers_run_survives_the_takeover(tmp_path, catalog):
    store = Store.open(tmp_path / "s", catalog=catalog)
    (run_id,) = _queue(store, 1)
    claim_next(store, "a")
    store.request_cancel(run_id)
    _expire(store, run_id)
    claim_next(store, "b")
    body = json.loads(store.get_run(run_id)["spec_json"])
    assert store.claim_run(run_id, "r0", body, 1, "b").renew() is True  # b sees the cancel at its first heartbeat


def test_a_server_catalog_is_bound_to_its_store_folder_and_its_password_is_never_written(
    tmp_path, postgres_server, monkeypatch
):
    db = postgres_server.create_database()
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("TTC_CATALOG_URL", postgres_server.url(db, password=True))  # the password only here
    store = Store.open(tmp_path / "s")
    _queue(store, 1)
    pointer = read_pointer(tmp_path / "s")
    assert pointer["url"] == postgres_server.url(db) and len(pointer["store_id"]) == 32
    assert not (tmp_path / "s" / "catalog.sqlite").exists()
    for f in (tmp_path / "s").rglob("*"):
        if f.is_file():
            assert postgres_server.password.encode() not in f.read_bytes(), f
    assert postgres_server.password not in store.catalog_shown

    monkeypatch.delenv("TTC_CATALOG_URL")
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    again = Store.open(tmp_path / "s", create=False)  # the folder's pointer finds the catalog
    assert len(again.runs_arrow()) == 1

    other = postgres_server.url(postgres_server.create_database())  # (as a user typed it: the password elsewhere)
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path / "s", catalog=other)
    assert str(e.value) == (
        f"--catalog: store {tmp_path / 's'} keeps its catalog at {postgres_server.url(db)}, not {other}; allowed: "
        "that URL, or none (the store's catalog.url is used)"
    )
    with pytest.raises(StoreError, match=r"already holds the queue of another store \(id [0-9a-f]{32}\)"):
        Store.open(tmp_path / "second", catalog=postgres_server.url(db))
    assert not (tmp_path / "second" / POINTER_FILE).exists()

    Store.open(tmp_path / "lite")
    with pytest.raises(StoreError, match="has its own SQLite catalog"):
        Store.open(tmp_path / "lite", catalog=other)


def test_an_unreachable_server_is_one_line_naming_it_without_its_password(tmp_path):
    url = "postgresql://ttc:s3cret-pw@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path / "s", catalog=url)
    message = str(e.value)
    assert message.startswith("store: cannot reach the catalog postgresql://ttc@127.0.0.1:1/nowhere (")
    assert "s3cret-pw" not in message and "\n" not in message
    assert not (tmp_path / "s" / POINTER_FILE).exists()
