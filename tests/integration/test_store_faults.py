"""A real run against a real full disk (a small tmpfs) and a real damaged shard: the run stops with one clear line,
the store stays intact and readable, and what was lost is regenerated once space is back or the shard is quarantined."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from store import Store
from tests.conftest import ROOT, ttc

pytestmark = pytest.mark.real_model

SPEC = """
name: faults
models: [gemma-3-270m]
task:
  kind: reasoning_gym
  datasets:
    - {name: basic_arithmetic, size: 6, config: {min_terms: 2, max_terms: 3, min_digits: 1, max_digits: 2}}
samples_per_question: 8
temperature: 1.0
max_tokens: 48
seed: 11
engine: {kind: llamacpp, n_parallel: 4}
"""
TOTAL = 6 * 8


def _private_tmpfs() -> list[str] | None:
    """The command prefix that runs a command with a fresh tmpfs mountable by it (a user + mount namespace), or
    None where this machine allows none."""
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    return ["unshare", "--user", "--map-root-user", "--mount"] if probe.returncode == 0 else None


FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from backend.cli import main as ttc
    from store import Store
    from store.maintenance import check

    spec, root, free = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Store.open(root)  # a store with its catalog, on the small disk
    ballast = os.path.join(root, "..", "ballast")
    with open(ballast, "wb") as fh:  # fill the disk, then give back `free` bytes
        try:
            while True:
                fh.write(b"\\0" * 65536)
                fh.flush()
        except OSError:
            pass
    with open(ballast, "r+b") as fh:
        fh.truncate(max(0, os.path.getsize(ballast) - free))
    code = ttc(["run", spec, "--store", root, "--quiet"])
    full = {"code": code}
    os.remove(ballast)  # space is back: the store must be whole and readable as it was left
    report = check(Store.open(root, create=False))
    full["problems"] = [str(p) for p in report.problems]
    store = Store.open(root, create=False)
    full["rows_after_failure"] = int(store.query("SELECT count(*) AS n FROM samples")["n"][0])
    full["status_after_failure"] = store.query("SELECT status FROM runs")["status"].tolist()
    full["rerun_code"] = ttc(["run", spec, "--store", root, "--quiet"])
    store = Store.open(root, create=False)
    full["rows"] = store.query(
        "SELECT count(*) AS n, count(DISTINCT (question_id, sample_idx)) AS keys FROM samples"
    ).iloc[0].astype(int).tolist()
    full["status"] = store.query("SELECT status FROM runs")["status"].tolist()
    full["healthy"] = check(store).healthy
    print("RESULT " + json.dumps(full))
    """
)


def test_a_full_disk_stops_the_run_with_one_line_and_the_store_stays_whole(tmp_path, write_spec):
    prefix = _private_tmpfs()
    if prefix is None:
        pytest.skip("no unprivileged tmpfs here (unshare --user --mount is not allowed): the full-disk test needs one")
    spec = write_spec(SPEC)
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK_SCRIPT)
    proc = subprocess.run(
        [
            *prefix,
            "sh",
            "-c",
            'mount -t tmpfs -o size=8m tmpfs "$1" && shift && exec "$@"',
            "sh",
            str(disk),
            sys.executable,
            str(script),
            str(spec),
            str(disk / "store"),
            str(128 * 1024),  # the catalog's next writes fit; a few sample shards do, then none
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert result["code"] == 2 and errors, proc.stderr[-3000:]
    assert ("No space left on device" in errors[0] or "disk is full" in errors[0]) and "run it again" in errors[0], (
        errors
    )
    assert "Traceback" not in proc.stderr
    assert result["problems"] == [], result  # every shard whole, no temp file, catalog intact
    # what it wrote is kept and reads back whole; how far it got depends on when the disk filled (a sample shard,
    # or only the compaction or the catalog at the end)
    assert 0 <= result["rows_after_failure"] <= TOTAL
    assert result["rerun_code"] == 0, proc.stderr[-3000:]
    assert result["rows"] == [TOTAL, TOTAL] and result["status"] == ["done"] and result["healthy"], result


def test_a_damaged_shard_is_named_quarantined_and_regenerated(tmp_path, write_spec):
    spec, root = write_spec(SPEC), tmp_path / "store"
    assert ttc("run", str(spec), "--store", str(root), "--quiet").returncode == 0
    store = Store.open(root, create=False)
    (shard,) = store.shards("samples")  # the finished run was compacted: one file holds every sample
    assert shard.name.startswith("compacted-")
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 3])

    query = ttc("sql", "--store", str(root), "SELECT count(*) FROM samples")
    assert query.returncode == 2 and str(shard) in query.stderr and "ttc store repair" in query.stderr
    assert len(query.stderr.strip().splitlines()) == 1, query.stderr

    found = ttc("store", "check", "--store", str(root))
    assert found.returncode == 1 and f"unreadable: {shard}" in found.stdout
    fixed = ttc("store", "repair", "--store", str(root))
    assert fixed.returncode == 0 and "re-queued run" in fixed.stdout, fixed.stderr
    assert (root / "quarantine" / shard.relative_to(root)).is_file()

    rerun = ttc("run", str(spec), "--store", str(root), "--quiet")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    rows = store.query("SELECT count(*) AS n, count(DISTINCT (question_id, sample_idx)) AS k FROM samples")
    assert rows.iloc[0].astype(int).tolist() == [TOTAL, TOTAL]
    assert ttc("store", "check", "--store", str(root)).returncode == 0
