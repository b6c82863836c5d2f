"""A remote endpoint's API key comes from the environment and goes nowhere else: a real spec with engine kind openai
runs against a real llama.cpp HTTP server that demands the key, with the key a unique marker, and the marker is
then looked for in every file of the store (parquet decoded, SQLite dumped), the output of `ttc run` and of a
queued run's worker (worker.log), the dashboard's table and chart exports, and the catalog's copy of the spec.
A key pasted into the spec itself is refused without being repeated."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend import export
from backend.config import parse_spec
from backend.execution.queue import submit
from store import Store
from tests.conftest import ROOT
from tests.integration.servers import LlamaCppHTTPServer

pytestmark = pytest.mark.real_model

KEY_ENV = "TTC_TEST_REMOTE_API_KEY"
QUESTIONS, SAMPLES = 2, 2


@pytest.fixture(scope="module")
def key() -> str:
    return f"sk-ttc-{secrets.token_hex(16)}"  # unique: found anywhere, it can only have come from here


@pytest.fixture(scope="module")
def server(model, key):
    with LlamaCppHTTPServer(model.path, n_parallel=2, n_ctx_per_slot=512, api_key=key) as srv:
        yield srv


def _spec(server, name: str, seed: int = 0) -> dict:
    return {
        "name": name,
        "models": ["gemma-3-270m"],
        "task": {"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": QUESTIONS}]},
        "samples_per_question": SAMPLES,
        "max_tokens": 8,
        "seed": seed,
        "engine": {"kind": "openai", "base_url": server.base_url, "n_parallel": 2, "api_key_env": KEY_ENV},
    }


def _ttc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _status(url: str, key: str | None) -> int:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    body = json.dumps({"prompt": "1, 2, 3,", "max_tokens": 2}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _found_in(root: Path, marker: str) -> list[str]:
    """Files under `root` that hold `marker`: raw bytes, and also decoded where a format could hide it (zstd
    parquet pages, SQLite pages)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if marker.encode() in data:
            found.append(str(path))
        elif path.suffix == ".parquet" and marker in json.dumps(pq.read_table(path).to_pylist(), default=str):
            found.append(f"{path} (decoded)")
        elif data.startswith(b"SQLite format 3"):
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                if marker in "\n".join(db.iterdump()):
                    found.append(f"{path} (dumped)")
    return found


def _exports(store: Store) -> dict[str, bytes]:
    """What the dashboard's download buttons produce, over everything the pages draw from: each table as CSV and
    Parquet, and a chart of the catalog's runs (spec included) as HTML, and SVG where kaleido has a Chromium."""
    out: dict[str, bytes] = {}
    frames = {t: store.query(f"SELECT * FROM {t}") for t in ("samples", "questions", "scores", "nodes", "runs")}
    for name, df in frames.items():
        for fmt in export.TABLE_FORMATS:
            out[f"{name}.{fmt}"] = export.export_table(df, fmt)
    runs = frames["runs"]
    fig = go.Figure(go.Table(header={"values": list(runs.columns)}, cells={"values": [runs[c] for c in runs]}))
    fig.add_trace(go.Bar(x=list(frames["samples"]["question_id"]), y=list(frames["samples"]["completion_tokens"])))
    out["runs.html"] = export.export_figure(fig, "html")
    try:
        out["runs.svg"] = export.export_figure(fig, "svg")
    except export.ExportError:
        pass
    return out


def _export_holds(blob: bytes, name: str, marker: str) -> bool:
    if name.endswith(".parquet"):
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ttc-export-{secrets.token_hex(4)}.parquet"
        path.write_bytes(blob)
        try:
            return marker in json.dumps(pq.read_table(path).to_pylist(), default=str)
        finally:
            path.unlink()
    return marker.encode() in blob


def test_the_scan_sees_into_compressed_parquet(tmp_path):
    marker = f"sk-ttc-{secrets.token_hex(16)}"
    rows = [secrets.token_hex(32) for _ in range(200)]
    rows[100] = marker  # among hex text, zstd Huffman-codes the literals: the raw bytes do not show it
    pq.write_table(pa.table({"text": rows}), tmp_path / "x.parquet", compression="zstd", write_statistics=False)
    assert marker.encode() not in (tmp_path / "x.parquet").read_bytes()
    assert _found_in(tmp_path, marker) == [f"{tmp_path / 'x.parquet'} (decoded)"]


def test_the_server_demands_the_key(server, key):
    url = f"{server.base_url}/completions"
    assert _status(url, None) == 401
    assert _status(url, "sk-ttc-" + "0" * 32) == 401
    assert _status(url, key) == 200


def test_the_key_is_sent_and_kept_nowhere(tmp_path, server, key):
    root = tmp_path / "store"
    spec_file = tmp_path / "spec.json"  # JSON is YAML
    spec_file.write_text(json.dumps(_spec(server, "keyed")))

    # `ttc run`, in the foreground: it can only fill samples if the server accepted the key it sent
    run = _ttc(["run", str(spec_file), "--store", str(root), "--quiet"], {KEY_ENV: key})
    assert run.returncode == 0, run.stderr[-2000:]

    # a queued run, as the dashboard submits it, run by a worker whose output goes to worker.log
    store = Store.open(root)
    queued = submit(store, parse_spec(_spec(server, "queued", seed=1)))
    with open(root / "worker.log", "ab") as log:
        worker = subprocess.run(
            [sys.executable, "-m", "backend.cli", "worker", "--store", str(root), "--once"],
            cwd=ROOT,
            env={**os.environ, KEY_ENV: key},
            stdout=log,
            stderr=log,
            timeout=600,
        )
    assert worker.returncode == 0, (root / "worker.log").read_text()[-2000:]
    assert store.get_run(queued)["status"] == "done"

    samples = store.query("SELECT run_id, count(*) AS n FROM samples GROUP BY run_id")
    assert sorted(samples["n"]) == [QUESTIONS * SAMPLES] * 2

    # the scan finds what is there: the variable's name is stored, as the spec says it
    assert _found_in(root, KEY_ENV)

    assert _found_in(root, key) == []
    assert key not in run.stdout + run.stderr
    exports = _exports(store)
    assert "runs.html" in exports and "samples.parquet" in exports
    assert [name for name, blob in exports.items() if _export_holds(blob, name, key)] == []
    for spec_json in store.query("SELECT spec_json FROM runs")["spec_json"]:
        spec = json.loads(spec_json)
        assert spec["engine"]["api_key_env"] == KEY_ENV
        assert key not in spec_json


def test_a_wrong_key_fails_the_run_without_repeating_it(tmp_path, server, key):
    root = tmp_path / "store"
    wrong = f"sk-ttc-{secrets.token_hex(16)}"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(_spec(server, "wrong-key")))
    run = _ttc(["run", str(spec_file), "--store", str(root), "--quiet"], {KEY_ENV: wrong})
    assert run.returncode != 0
    assert "HTTP 401" in run.stderr
    assert wrong not in run.stdout + run.stderr and key not in run.stdout + run.stderr
    assert _found_in(root, wrong) == []


@pytest.mark.parametrize(
    ("engine", "field"),
    [
        ({"api_key": "{key}"}, "engine.api_key: unknown key"),
        ({"api_key_env": "{key}"}, "engine.api_key_env:"),
        ({"base_url": "http://user:{key}@127.0.0.1:1/v1"}, "engine.base_url: no user, password or query"),
        ({"base_url": "http://127.0.0.1:1/v1?api_key={key}"}, "engine.base_url: no user, password or query"),
    ],
    ids=["api_key", "key-as-variable-name", "url-password", "url-query"],
)
def test_a_key_pasted_into_the_spec_is_refused_unrepeated(tmp_path, server, engine, field):
    pasted = f"sk-ttc-{secrets.token_hex(16)}"
    spec = _spec(server, "pasted")
    spec["engine"] |= {k: v.replace("{key}", pasted) for k, v in engine.items()}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    root = tmp_path / "store"
    run = _ttc(["run", str(spec_file), "--store", str(root), "--quiet"], {KEY_ENV: "unused"})
    assert run.returncode != 0
    assert field in run.stderr
    assert pasted not in run.stdout + run.stderr
    assert not root.exists()  # refused before the store was created
