"""Compaction, check and repair on a real store (Parquet shards + SQLite catalog): merges are invisible to readers,
a crash at any point of one loses nothing, and a damaged shard is named, quarantined and regenerated."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import threading

import pyarrow.parquet as pq
import pytest

from backend.cli import main as ttc
from backend.errors import StoreError
from bench.synthetic_store import make_synthetic_store
from store import Store
from store.maintenance import check, compact_run, purge_replaced, repair
from store.schema import TABLES
from tests.conftest import ROOT

SNAPSHOT = {
    "samples": "SELECT run_id, model, question_id, sample_idx, completion, answer, correct, flops FROM samples",
    "scores": "SELECT run_id, model, question_id, sample_idx, verifier, score FROM scores",
    "nodes": "SELECT run_id, model, strategy, config, question_id, node_id, parent_id, step_text FROM nodes",
    "questions": "SELECT run_id, question_id, question, reference FROM questions",
}


def snapshot(store: Store) -> dict[str, list[tuple]]:
    con = store.connect()
    try:
        return {t: sorted(con.execute(sql).fetchall(), key=repr) for t, sql in SNAPSHOT.items()}
    finally:
        con.close()


def reshard(store: Store, pieces: int = 12) -> None:
    """Split every table's shards into `pieces` small ones, as a worker's one-a-second flushes leave them."""
    for table in written_tables(store):
        for folder in (store.root / table).iterdir():
            rows = pq.read_table([p for p in store.shards(table) if p.parent == folder])
            for path in folder.glob("*.parquet"):
                path.unlink()
            step = max(1, -(-rows.num_rows // pieces))
            for start in range(0, rows.num_rows, step):
                store.write_shard(table, folder.name, rows.slice(start, step))


def written_tables(store: Store) -> list[str]:
    """The tables this store has shards of (a store of fixed pools has no adaptive `allocations`)."""
    return [t for t in TABLES if (store.root / t).is_dir()]


@pytest.fixture
def sharded(tmp_path):
    store = make_synthetic_store(tmp_path / "store", n_questions=20, n_samples=8, n_trees=2)
    reshard(store)
    return store


def run_ids(store: Store) -> list[str]:
    return sorted(p.name for p in (store.root / "samples").iterdir())


def test_compaction_merges_each_table_into_one_file_with_the_same_rows(sharded):
    before = snapshot(sharded)
    for run_id in run_ids(sharded):
        result = compact_run(sharded, run_id)
        assert set(result.merged) in (set(written_tables(sharded)) - {"questions"}, set(written_tables(sharded)))
    assert snapshot(sharded) == before  # replaced shards still on disk, but no reader counts them
    assert all(len(sharded.shards(t)) == len(run_ids(sharded)) for t in ("samples", "scores", "nodes"))
    removed = purge_replaced(sharded, min_age_s=0)
    assert removed > 0
    for table in written_tables(sharded):
        schema = TABLES[table]
        for folder in (sharded.root / table).iterdir():
            files = list(folder.glob("*.parquet"))
            assert len(files) == 1 and files[0].name.startswith("compacted-"), files
            assert pq.read_schema(files[0]).remove_metadata() == schema  # the current layout, column for column
    assert snapshot(sharded) == before
    assert check(sharded).healthy


def test_a_run_that_grows_after_compaction_compacts_again(sharded):
    run_id = run_ids(sharded)[0]
    compact_run(sharded, run_id)
    extra = pq.read_table(sharded.shards("samples")[0]).slice(0, 3)
    extra = extra.set_column(extra.schema.get_field_index("sample_idx"), "sample_idx", [[100, 101, 102]])
    sharded.write_shard("samples", run_id, extra)
    before = snapshot(sharded)
    assert compact_run(sharded, run_id).merged == {"samples": 2}
    assert snapshot(sharded) == before
    purge_replaced(sharded, min_age_s=0)
    assert snapshot(sharded) == before and check(sharded).healthy


@pytest.mark.parametrize(
    "crash_at", ["writing the merge", "after the merge, before removal", "halfway through removal"]
)
def test_a_crash_at_any_point_of_a_compaction_loses_nothing(sharded, crash_at, monkeypatch):
    before = snapshot(sharded)
    run_id = run_ids(sharded)[0]
    if crash_at == "writing the merge":
        import store.maintenance as maintenance

        def torn(final, write):  # the process dies with the merge half written under its temp name
            tmp = final.with_name(f".{final.name}.tmp")
            tmp.write_bytes(b"PAR1 half a file")
            raise KeyboardInterrupt

        monkeypatch.setattr(maintenance, "publish", torn)
        with pytest.raises(KeyboardInterrupt):
            compact_run(sharded, run_id)
        monkeypatch.undo()
    else:
        compact_run(sharded, run_id)
        if crash_at == "halfway through removal":
            folder = sharded.root / "samples" / run_id
            old = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("compacted-"))
            for p in old[: len(old) // 2]:
                p.unlink()
    assert snapshot(sharded) == before
    compact_run(sharded, run_id)  # the next compaction (or repair) finishes the job
    purge_replaced(sharded, min_age_s=0)
    assert snapshot(sharded) == before


def test_compaction_killed_at_random_moments_never_changes_what_readers_see(sharded):
    """A real process SIGKILLed at 8 random moments of `ttc store compact`: after each kill the rows are the same."""
    before = snapshot(sharded)
    rng = random.Random(14)
    code = (
        "import sys; from store import Store; from store.maintenance import compact_run, purge_replaced;"
        "s = Store.open(sys.argv[1], create=False); [compact_run(s, r) for r in sys.argv[2:]];"
        "purge_replaced(s, min_age_s=0)"
    )
    for _ in range(8):
        reshard(sharded, pieces=rng.randint(5, 15))
        proc = subprocess.Popen([sys.executable, "-c", code, str(sharded.root), *run_ids(sharded)], cwd=ROOT)
        try:
            proc.wait(timeout=rng.uniform(0.3, 2.5))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert snapshot(sharded) == before
    compact_run(sharded, run_ids(sharded)[0])
    assert snapshot(sharded) == before


def test_readers_never_see_half_a_compaction(sharded):
    """A reader counting rows in a loop while runs are merged and their shards removed always sees the same count."""
    expected = {t: len(rows) for t, rows in snapshot(sharded).items()}
    seen: list[dict] = []
    errors: list[BaseException] = []
    sql = (
        "SELECT (SELECT count(*) FROM samples) AS samples, (SELECT count(*) FROM scores) AS scores,"
        " (SELECT count(*) FROM nodes) AS nodes, (SELECT count(*) FROM questions) AS questions"
    )
    for pieces in (6, 11, 4):
        reshard(sharded, pieces)  # deletes, then writes: not what is under test, so no reader runs meanwhile
        stop = threading.Event()

        def read(stop=stop) -> None:
            while not stop.is_set():
                try:
                    seen.append(sharded.query(sql).iloc[0].to_dict())
                except BaseException as e:  # noqa: BLE001 - reported below
                    errors.append(e)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for run_id in run_ids(sharded):
                compact_run(sharded, run_id)
            purge_replaced(sharded, min_age_s=0.2)  # a short grace: the reader's listings race the removal
        finally:
            stop.set()
            reader.join()
    assert not errors, errors[:3]
    assert len(seen) > 3 and all({k: int(v) for k, v in row.items()} == expected for row in seen)


def test_a_corrupt_shard_is_named_then_quarantined_and_its_run_requeued(sharded, capsys):
    run_id = run_ids(sharded)[0]
    victim = sharded.shards("samples")[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated: no footer
    with pytest.raises(StoreError) as err:
        sharded.query("SELECT count(*) FROM samples")
    message = str(err.value)
    assert str(victim) in message and "ttc store repair" in message and "\n" not in message

    assert ttc(["store", "check", "--store", str(sharded.root)]) == 1
    out = capsys.readouterr()
    assert f"unreadable: {victim}" in out.out and "ttc store repair" in out.err

    kept = sum(pq.read_metadata(p).num_rows for p in sharded.shards("samples") if p != victim)
    assert ttc(["store", "repair", "--store", str(sharded.root)]) == 0
    out = capsys.readouterr()
    quarantined = sharded.root / "quarantine" / victim.relative_to(sharded.root)
    assert quarantined.is_file() and not victim.exists() and f"re-queued run {victim.parent.name}" in out.out
    assert sharded.get_run(victim.parent.name)["status"] == "queued"
    assert int(sharded.query("SELECT count(*) AS n FROM samples")["n"][0]) == kept
    assert check(sharded).healthy
    assert run_id in run_ids(sharded)


def test_a_shard_with_a_foreign_layout_is_unreadable_to_check(sharded):
    folder = sharded.shards("scores")[0].parent
    table = pq.read_table(sharded.shards("scores")[0])
    bogus = table.rename_columns([*table.column_names[:-1], "surprise"])
    pq.write_table(bogus, folder / "20990101T000000000000-deadbeef.parquet")
    problems = check(sharded).problems
    assert [p.kind for p in problems] == ["unreadable"] and "unknown column 'surprise'" in problems[0].detail
    assert repair(sharded).quarantined == [
        str((folder / "20990101T000000000000-deadbeef.parquet").relative_to(sharded.root))
    ]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EACCES])
def test_a_shard_that_cannot_be_written_is_one_line_and_leaves_no_temp(sharded, code, monkeypatch):
    import store.store as store_module

    rows = pq.read_table(sharded.shards("samples")[0])
    before = snapshot(sharded)

    def fail(table, where, **_):
        open(where, "wb").write(b"PAR1 partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store_module.pq, "write_table", fail)
    with pytest.raises(StoreError) as err:
        sharded.write_shard("samples", rows["run_id"][0].as_py(), rows)
    message = str(err.value)
    assert os.strerror(code) in message and "samples shard" in message and "\n" not in message
    assert not list(sharded.root.glob("*/*/.*.tmp"))
    monkeypatch.undo()
    assert snapshot(sharded) == before


def test_store_compact_cli(sharded, capsys):
    assert ttc(["store", "compact", "--store", str(sharded.root), "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert all(f"run {r}: samples" in out for r in run_ids(sharded))
    assert ttc(["store", "compact", "--store", str(sharded.root), "--run", "nope"]) == 2
    assert "--run: no run 'nope'" in capsys.readouterr().err
