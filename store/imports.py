"""The catalog side of imported runs (`ttc import`, backend/importers): a run row whose status says no worker may
claim it, and its provenance in the `imports` table (store/migrations.m013_imports).

An import is committed in three steps, so a reader never sees half of one: the run row is written as `importing`
(the analysis pages leave such a run out), its shards are moved into the store's folders, then one transaction
marks it `imported` and records its provenance. A crash in between leaves an `importing` run that the next import
of the same files replaces."""

from __future__ import annotations

import json

from sqlalchemy import text

import store.catalog as catalogs
from store.store import Store

IMPORTING = "importing"
IMPORTED = "imported"
"""Status of an imported run: finished, read-only (a worker claims only queued or running runs)."""


def find_import(store: Store, content_hash: str) -> dict | None:
    """The import of these exact files and options, if the store holds one."""
    with store.catalog.connect() as db:
        row = db.execute(text("SELECT * FROM imports WHERE content_hash = :h"), {"h": content_hash}).mappings().first()
    return dict(row) if row else None


def begin_import(store: Store, run_id: str, name: str, spec: dict, total_samples: int) -> None:
    """Record the run as being imported (replacing an import of it that a crash left unfinished)."""
    with store.catalog.begin() as db:
        now = catalogs.now(db)
        db.execute(text("DELETE FROM runs WHERE run_id = :r AND status = :s"), {"r": run_id, "s": IMPORTING})
        db.execute(
            text(
                "INSERT INTO runs(run_id, name, spec_json, status, total_samples, created_at, updated_at, started_at) "
                "VALUES (:r, :n, :s, :st, :t, :now, :now, :now)"
            ),
            {
                "r": run_id,
                "n": name,
                "s": json.dumps(spec, sort_keys=True),
                "st": IMPORTING,
                "t": total_samples,
                "now": now,
            },
        )


def finish_import(store: Store, run_id: str, provenance: dict) -> None:
    """Mark the run imported and record its provenance, in one transaction."""
    with store.catalog.begin() as db:
        now = catalogs.now(db)
        db.execute(
            text("UPDATE runs SET status = :st, finished_at = :now, updated_at = :now WHERE run_id = :r"),
            {"st": IMPORTED, "now": now, "r": run_id},
        )
        db.execute(
            text(
                "INSERT INTO imports(run_id, content_hash, format, importer_version, files_json, options_json, "
                "imported_at) VALUES (:r, :h, :f, :v, :files, :o, :now)"
            ),
            {
                "r": run_id,
                "h": provenance["content_hash"],
                "f": provenance["format"],
                "v": provenance["importer_version"],
                "files": json.dumps(provenance["files"]),
                "o": json.dumps(provenance["options"], sort_keys=True),
                "now": now,
            },
        )


def drop_unfinished(store: Store, run_id: str) -> None:
    """Forget an import that failed before it was committed (its run row; its shards were never moved in)."""
    with store.catalog.begin() as db:
        db.execute(text("DELETE FROM runs WHERE run_id = :r AND status = :s"), {"r": run_id, "s": IMPORTING})
