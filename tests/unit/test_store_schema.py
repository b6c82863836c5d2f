"""Pins the exact schema a fresh store gets; a schema change must come with a new named migration."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sqlalchemy import inspect, text

from store import Store
from store.migrations import MIGRATIONS
from store.schema import SHARD_SCHEMA_VERSION, TABLES


def test_migrations_are_named_in_order():
    names = [n for n, _ in MIGRATIONS]
    assert names == [
        "m001_runs",
        "m002_shard_schema_version",
        "m003_workers",
        "m004_grade_error",
        "m005_node_kind",
        "m006_sample_dataset",
        "m007_run_leases",
        "m008_token_confidence",
        "m009_allocations",
        "m010_question_key",
        "m011_token_confidence_range",
        "m012_score_pass_tokens",
        "m013_imports",
        "m014_served_labels",
        "m015_trace_confidence",
    ]


def test_fresh_catalog_has_exact_schema(tmp_path):
    store = Store.open(tmp_path / "s")
    insp = inspect(store.catalog)
    schema = {t: {c["name"]: str(c["type"]) for c in insp.get_columns(t)} for t in insp.get_table_names()}
    assert schema == {
        "_migrations": {"name": "TEXT", "applied_at": "TEXT"},
        "imports": {
            "run_id": "TEXT",
            "content_hash": "TEXT",
            "format": "TEXT",
            "importer_version": "TEXT",
            "files_json": "TEXT",
            "options_json": "TEXT",
            "imported_at": "TEXT",
        },
        "runs": {
            "run_id": "TEXT",
            "name": "TEXT",
            "spec_json": "TEXT",
            "status": "TEXT",
            "total_samples": "INTEGER",
            "created_at": "TEXT",
            "updated_at": "TEXT",
            "started_at": "TEXT",
            "finished_at": "TEXT",
            "heartbeat_at": "TEXT",
            "worker_pid": "INTEGER",
            "worker_host": "TEXT",
            "cancel_requested": "INTEGER",
            "error": "TEXT",
            "worker_id": "TEXT",
            "lease_expires_at": "TEXT",
            "attempts": "INTEGER",
        },
        "served_labels": {"run_id": "TEXT", "choice": "INTEGER", "correct": "INTEGER", "labelled_at": "TEXT"},
        "store_meta": {"key": "TEXT", "value": "TEXT"},
        "workers": {
            "worker_id": "TEXT",
            "pid": "INTEGER",
            "host": "TEXT",
            "started_at": "TEXT",
            "heartbeat_at": "TEXT",
            "current_run_id": "TEXT",
            "stopped_at": "TEXT",
        },
    }
    with store.catalog.connect() as db:
        assert [r[0] for r in db.execute(text("SELECT name FROM _migrations ORDER BY name"))] == [
            n for n, _ in MIGRATIONS
        ]


def test_reopening_applies_nothing_twice(tmp_path):
    Store.open(tmp_path / "s")
    store = Store.open(tmp_path / "s")
    with store.catalog.connect() as db:
        assert db.execute(text("SELECT count(*) FROM _migrations")).scalar() == len(MIGRATIONS)


def test_samples_view_columns_and_types(tmp_path):
    store = Store.open(tmp_path / "s")
    empty = {r[0]: r[1] for r in store.connect().execute("DESCRIBE samples").fetchall()}
    row = {f.name: None for f in TABLES["samples"]}
    row.update(run_id="r", question_id="q", sample_idx=0)
    store.write_shard("samples", "r", pa.Table.from_pylist([row], schema=TABLES["samples"]))
    written = {r[0]: r[1] for r in store.connect().execute("DESCRIBE samples").fetchall()}
    assert empty == written
    assert written == {
        "run_id": "VARCHAR",
        "model": "VARCHAR",
        "task": "VARCHAR",
        "question_id": "VARCHAR",
        "sample_idx": "INTEGER",
        "strategy": "VARCHAR",
        "prompt": "VARCHAR",
        "completion": "VARCHAR",
        "answer": "VARCHAR",
        "score": "DOUBLE",
        "correct": "BOOLEAN",
        "prompt_tokens": "INTEGER",
        "cached_prompt_tokens": "INTEGER",
        "completion_tokens": "INTEGER",
        "logprob_sum": "DOUBLE",
        "logprob_mean": "DOUBLE",
        "finish_reason": "VARCHAR",
        "latency_s": "DOUBLE",
        "prefill_flops": "DOUBLE",
        "decode_flops": "DOUBLE",
        "flops": "DOUBLE",
        "seed": "BIGINT",
        "created_at": "TIMESTAMP WITH TIME ZONE",
        "grade_error": "VARCHAR",
        "dataset": "VARCHAR",
        "token_confidence": "USMALLINT[]",
        "question_key": "VARCHAR",
        "trace_confidence": "DOUBLE",
    }


def test_shard_write_is_atomic_and_temp_files_are_ignored(tmp_path):
    store = Store.open(tmp_path / "s")
    rows = pa.Table.from_pylist([{"run_id": "r", "question_id": "q", "sample_idx": i} for i in range(3)]).cast(
        pa.schema([TABLES["samples"].field(n) for n in ("run_id", "question_id", "sample_idx")])
    )
    full = pa.table(
        {f.name: rows[f.name] if f.name in rows.column_names else pa.nulls(3, f.type) for f in TABLES["samples"]}
    )
    store.write_shard("samples", "r", full)
    (tmp_path / "s" / "samples" / "r" / ".half-written.parquet.tmp").write_bytes(b"PAR1garbage")
    assert store.query("select count(*) n from samples")["n"][0] == 3
    assert store.remove_stale_temp_files("r") == 1
    assert store.existing_sample_keys("r", None) == set()  # model is NULL here: no key matches model = NULL


def test_a_store_written_before_a_column_existed_reads_it_as_null(tmp_path):
    """Shard layout 1 had no grade_error: its shards still read, the new column NULL, next to layout-2 shards."""
    store = Store.open(tmp_path / "s")
    import pyarrow.parquet as pq

    old = pa.schema([f for f in TABLES["samples"] if f.name != "grade_error"])
    (tmp_path / "s" / "samples" / "r").mkdir(parents=True)  # as an earlier version wrote it
    pq.write_table(
        pa.Table.from_pylist([{"run_id": "r", "question_id": "q", "sample_idx": 0}], schema=old),
        tmp_path / "s" / "samples" / "r" / "old.parquet",
    )
    assert store.query("SELECT count(*) AS n, count(grade_error) AS e FROM samples").to_dict("records") == [
        {"n": 1, "e": 0}
    ]
    new = {f.name: None for f in TABLES["samples"]} | {
        "run_id": "r",
        "question_id": "q",
        "sample_idx": 1,
        "grade_error": "boom",
    }
    store.write_shard("samples", "r", pa.Table.from_pylist([new], schema=TABLES["samples"]))
    assert store.query("SELECT sample_idx, coalesce(grade_error, '-') AS e FROM samples ORDER BY 1")["e"].tolist() == [
        "-",
        "boom",
    ]
    with store.catalog.connect() as db:
        assert db.execute(text("SELECT value FROM store_meta WHERE key = 'shard_schema_version'")).scalar() == str(
            SHARD_SCHEMA_VERSION
        )


def test_a_store_written_by_a_newer_layout_is_refused(tmp_path):
    import pytest

    from backend.errors import StoreError
    from store.schema import SHARD_SCHEMA_VERSION

    store = Store.open(tmp_path / "s")
    with store.catalog.begin() as db:
        key = "key = 'shard_schema_version'"
        assert db.execute(text(f"SELECT value FROM store_meta WHERE {key}")).scalar() == str(SHARD_SCHEMA_VERSION)
        db.execute(text(f"UPDATE store_meta SET value = :v WHERE {key}"), {"v": str(SHARD_SCHEMA_VERSION + 1)})
    with pytest.raises(
        StoreError,
        match=rf"written by a newer ttc-lab \(shard layout {SHARD_SCHEMA_VERSION + 1}, this one reads up to {SHARD_SCHEMA_VERSION}\)",
    ):
        Store.open(tmp_path / "s", create=False)


def test_nodes_of_layout_2_read_with_their_kind_unfolded(tmp_path):
    """Layout 2 folded a node's kind into finish_reason ("revision:stop"); such shards read as layout 3."""
    import pyarrow.parquet as pq

    store = Store.open(tmp_path / "s")
    old = pa.schema([f for f in TABLES["nodes"] if f.name != "kind"])
    rows = [
        {"run_id": "r", "node_id": i, "finish_reason": fr}
        for i, fr in enumerate(["root", "step", "revision:stop", "answer:length"])
    ]
    (tmp_path / "s" / "nodes" / "r").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=old), tmp_path / "s" / "nodes" / "r" / "old.parquet")
    new = {f.name: None for f in TABLES["nodes"]} | {
        "run_id": "r",
        "node_id": 9,
        "kind": "revision",
        "finish_reason": "length",
    }
    store.write_shard("nodes", "r", pa.Table.from_pylist([new], schema=TABLES["nodes"]))
    got = store.query("SELECT node_id, kind, coalesce(finish_reason, '-') AS fr FROM nodes ORDER BY node_id")
    assert got.values.tolist() == [
        [0, "root", "-"],
        [1, "step", "-"],
        [2, "revision", "stop"],
        [3, "answer", "length"],
        [9, "revision", "length"],
    ]


def test_samples_of_layout_3_read_their_dataset_from_task(tmp_path):
    """Layout 3 stored the dataset in samples.task; layout 4 stores the suite's kind there and the dataset apart."""
    import pyarrow.parquet as pq

    store = Store.open(tmp_path / "s")
    old = pa.schema([f for f in TABLES["samples"] if f.name != "dataset"])
    (tmp_path / "s" / "samples" / "r").mkdir(parents=True)
    row = {"run_id": "r", "question_id": "q", "sample_idx": 0, "task": "chain_sum"}
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "s" / "samples" / "r" / "old.parquet")
    new = {f.name: None for f in TABLES["samples"]} | {"run_id": "r", "question_id": "q", "sample_idx": 1}
    new |= {"task": "reasoning_gym", "dataset": "basic_arithmetic"}
    store.write_shard("samples", "r", pa.Table.from_pylist([new], schema=TABLES["samples"]))
    got = store.query("SELECT sample_idx, coalesce(task, '-') AS task, dataset FROM samples ORDER BY 1")
    assert got.values.tolist() == [[0, "-", "chain_sum"], [1, "reasoning_gym", "basic_arithmetic"]]


def test_a_store_written_before_token_confidences_reads_them_as_null_and_the_rules_say_so(tmp_path):
    """Shard layout 4 had no token_confidence: its pools load, and the confidence rules that need it are left out
    with one line saying why; perplexity consistency, which needs only the stored mean logprob, still runs."""
    import pyarrow.parquet as pq

    from backend.metrics.confidence import available_rules, missing_signals
    from backend.metrics.pools import load_pool

    store = Store.open(tmp_path / "s")
    old = pa.schema([f for f in TABLES["samples"] if f.name != "token_confidence"])
    rows = [
        {"run_id": "r", "model": "m", "question_id": "q", "sample_idx": i, "answer": "1", "logprob_mean": -0.5}
        for i in range(3)
    ]
    (tmp_path / "s" / "samples" / "r").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=old), tmp_path / "s" / "samples" / "r" / "old.parquet")
    con = store.connect()
    pool = load_pool(con, ["r"], "m")
    con.close()
    assert available_rules(pool) == ["perplexity_consistency"]
    assert missing_signals(pool) == [
        "deepconf_weighted and deepconf_filtered need per-token confidences, which these samples do not carry "
        "(written before the store kept them, shard layout < 5, by an engine without logprobs, or imported from a "
        "log that holds none); sample again with logprobs to compare them"
    ]


def test_trace_confidences_are_read_where_stored_and_computed_from_the_tokens_of_older_shards(tmp_path):
    """Layout 10 stores each trace's confidence beside its token confidences: a pool reads the stored number (here
    one that its tokens would not give, to tell the two apart), and computes it from the tokens for rows of a
    layout-9 shard, which has no such column, next to them."""
    import pyarrow.parquet as pq

    from backend.metrics.confidence import SCALE
    from backend.metrics.pools import load_pool

    store = Store.open(tmp_path / "s")
    base = {f.name: None for f in TABLES["samples"]} | {"run_id": "r", "model": "m", "question_id": "q", "answer": "1"}
    old = pa.schema([f for f in TABLES["samples"] if f.name != "trace_confidence"])
    (tmp_path / "s" / "samples" / "r").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(
            [
                {k: v for k, v in base.items() if k != "trace_confidence"}
                | {"sample_idx": 0, "token_confidence": [32, 48]}
            ],
            schema=old,
        ),
        tmp_path / "s" / "samples" / "r" / "old.parquet",
    )
    stored = [
        base | {"sample_idx": 1, "token_confidence": [16, 16], "trace_confidence": 7.0},
        base | {"sample_idx": 2, "token_confidence": None, "trace_confidence": None},  # an engine without logprobs
    ]
    store.write_shard("samples", "r", pa.Table.from_pylist(stored, schema=TABLES["samples"]))
    con = store.connect()
    pool = load_pool(con, ["r"], "m")
    without = load_pool(con, ["r"], "m", confidence=False)
    con.close()
    np.testing.assert_array_equal(pool.confidence, [[(32 + 48) / 2 / SCALE, 7.0, np.nan]])
    assert without.confidence is None


def test_one_byte_token_confidences_of_layouts_5_to_7_read_as_two_bytes_unchanged(tmp_path):
    """Layout 8 widened samples.token_confidence from uint8 to uint16 in the same 1/16-nat steps: old shards read
    in the current type with their values, next to new ones, before and after a compaction merges them."""
    import pyarrow.parquet as pq

    from backend.metrics.confidence import SCALE
    from backend.metrics.pools import load_pool
    from store.maintenance import compact_run

    store = Store.open(tmp_path / "s")
    old = pa.schema(
        [f if f.name != "token_confidence" else pa.field(f.name, pa.list_(pa.uint8())) for f in TABLES["samples"]]
    )
    base = {f.name: None for f in TABLES["samples"]} | {"run_id": "r", "model": "m", "question_id": "q", "answer": "1"}
    (tmp_path / "s" / "samples" / "r").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([base | {"sample_idx": 0, "token_confidence": [16, 255]}], schema=old),
        tmp_path / "s" / "samples" / "r" / "old.parquet",
    )
    only_old = store.connect()
    assert only_old.execute("SELECT typeof(token_confidence) FROM samples").fetchone() == ("USMALLINT[]",)
    only_old.close()
    new = base | {"sample_idx": 1, "token_confidence": [16, 1652]}  # 103.25 nats: beyond one byte
    store.write_shard("samples", "r", pa.Table.from_pylist([new], schema=TABLES["samples"]))

    def read():
        con = store.connect()
        got = [r[0] for r in con.execute("SELECT token_confidence FROM samples ORDER BY sample_idx").fetchall()]
        pool = load_pool(con, ["r"], "m")
        con.close()
        return got, pool.confidence

    for when in ("before", "after"):
        got, confidence = read()
        assert got == [[16, 255], [16, 1652]], when
        np.testing.assert_allclose(confidence, [[(16 + 255) / 2 / SCALE, (16 + 1652) / 2 / SCALE]])
        if when == "before":
            assert compact_run(store, "r").merged == {"samples": 2}


def test_the_allocations_table_has_its_exact_columns_on_a_fresh_store(tmp_path):
    store = Store.open(tmp_path / "s")
    described = {r[0]: r[1] for r in store.connect().execute("DESCRIBE allocations").fetchall()}
    assert described == {
        "run_id": "VARCHAR",
        "model": "VARCHAR",
        "question_id": "VARCHAR",
        "round": "INTEGER",
        "first_idx": "INTEGER",
        "samples": "INTEGER",
        "flops_bound": "DOUBLE",
        "predicted_difficulty": "DOUBLE",
        "settled_probability": "DOUBLE",
        "reason": "VARCHAR",
        "remaining_flops": "DOUBLE",
        "samples_before": "INTEGER",
        "votes": "INTEGER",
        "leader": "INTEGER",
        "runner_up": "INTEGER",
        "prefill_bound": "DOUBLE",
        "sample_bound": "DOUBLE",
        "created_at": "TIMESTAMP WITH TIME ZONE",
    }


def test_questions_and_nodes_views_carry_the_question_key(tmp_path):
    store = Store.open(tmp_path / "s")
    con = store.connect()
    for table in ("questions", "nodes"):
        described = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        assert "question_key" in described and described == [f.name for f in TABLES[table]]
    assert "question_key" not in [f.name for f in TABLES["scores"]]  # a score reaches its question through its sample


def test_the_question_key_in_sql_is_the_one_in_python():
    import duckdb

    from store.keys import QUESTION_KEY_SQL, question_key

    rows = [
        ("reasoning_gym", "basic_arithmetic", "-1 / 1 =", "-1"),
        ("humaneval", "HumanEval", "def f():\n    ünïcode ✓", "assert f() is None"),
        (None, "d", "", None),
    ]
    con = duckdb.connect()
    got = con.execute(
        f"SELECT {QUESTION_KEY_SQL} FROM (VALUES (?, ?, ?, ?)) t(task, dataset, question, reference)", list(rows[0])
    ).fetchone()
    assert got is not None and got[0] == question_key(*rows[0])
    for row in rows:
        sql = con.execute(
            f"SELECT {QUESTION_KEY_SQL} FROM (SELECT ?::VARCHAR task, ?::VARCHAR dataset, ?::VARCHAR question, "
            "?::VARCHAR reference)",
            list(row),
        ).fetchone()
        assert sql is not None and sql[0] == question_key(*row)
    assert len({question_key(*r) for r in rows}) == len(rows)


def test_nodes_keep_every_verifier_pass_and_older_shards_read_them_as_null(tmp_path):
    """Layout 9: a node's ledger-cached prompt tokens and each verifier pass charged to it, as three INTEGER[] of one
    entry per pass (the spans depend on positions: sums would not re-price them). Shards without them read NULL."""
    import pyarrow.parquet as pq

    names = ("verifier_pass_prompt_tokens", "verifier_pass_cached_tokens", "verifier_pass_completion_tokens")
    fields = {f.name: f.type for f in TABLES["nodes"]}
    assert fields["ledger_cached_tokens"] == pa.int32()
    assert [fields[n] for n in names] == [pa.list_(pa.int32())] * 3
    store = Store.open(tmp_path / "s")
    old = pa.schema([f for f in TABLES["nodes"] if f.name not in (*names, "ledger_cached_tokens")])
    (tmp_path / "s" / "nodes" / "r").mkdir(parents=True)
    row = {f.name: None for f in old} | {"run_id": "r", "model": "m", "question_id": "q", "node_id": 0}
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "s" / "nodes" / "r" / "old.parquet")
    new = {f.name: None for f in TABLES["nodes"]} | {"run_id": "r", "model": "m", "question_id": "q", "node_id": 1}
    new |= dict(zip(names, ([10, 14], [0, 10], [1, 1]))) | {"ledger_cached_tokens": 3}
    store.write_shard("nodes", "r", pa.Table.from_pylist([new], schema=TABLES["nodes"]))
    con = store.connect()
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE nodes)").fetchall())
    assert [types[n] for n in names] == ["INTEGER[]"] * 3
    got = con.execute(f"SELECT node_id, {', '.join(names)}, ledger_cached_tokens FROM nodes ORDER BY 1").fetchall()
    assert got == [(0, None, None, None, None), (1, [10, 14], [0, 10], [1, 1], 3)]
