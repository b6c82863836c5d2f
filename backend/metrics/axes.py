"""Which compute axes the selected runs can be drawn on, and, for each one they cannot, one line saying why: the
one home of the rule the analysis pages and `ttc compute-optimal` read.

Samples are always countable. Tokens (the tokens x axis, cost of pass) need every sample's prompt and completion
token counts; FLOPs (the FLOPs x axis, Compute-optimal's budgets) need every sample's prefill and decode FLOPs.
The worker records all of them; an imported run (backend/importers) has token counts only where its format holds
them or a tokenizer recounted them (ttc import --tokenizer NAME), and FLOPs only where it was also given the
model's parameter count or architecture (ttc import --params N or --arch FILE), so the reason names what the import
lacked and what supplies it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

UNITS = ("samples", "tokens", "flops")
COST = "cost"
"""Cost of pass: money per correct answer, priced from token counts."""

_SHOWN = 3  # runs named in a reason; more are counted

AXES_SQL = """
SELECT run_id, count(*) AS n,
       count(*) FILTER (WHERE prompt_tokens IS NULL OR completion_tokens IS NULL) AS no_tokens,
       count(*) FILTER (WHERE prefill_flops IS NULL OR decode_flops IS NULL) AS no_flops
FROM samples WHERE list_contains(?, run_id) AND (? IS NULL OR model = ?) GROUP BY run_id ORDER BY run_id"""


@dataclass(frozen=True)
class Axes:
    """`missing`: unit ("tokens", "flops", COST) -> the one line saying why the runs cannot be drawn on it."""

    missing: dict[str, str] = field(default_factory=dict)

    def can(self, unit: str) -> bool:
        return unit not in self.missing

    def why(self, unit: str) -> str:
        return self.missing.get(unit, "")

    def usable(self, unit: str) -> str:
        """`unit` if the runs can be drawn on it, else the samples axis (always drawable)."""
        return unit if self.can(unit) else "samples"


def _import_format(spec_json) -> str | None:
    """The format a run was imported from (its spec's `import` entry, backend/importers/ingest.py), or None."""
    if not isinstance(spec_json, str):
        return None
    try:
        spec = json.loads(spec_json)
    except ValueError:
        return None
    imp = spec.get("import") if isinstance(spec, dict) else None
    return imp.get("format") if isinstance(imp, dict) else None


def _names(runs: Sequence[str]) -> str:
    shown = ", ".join(runs[:_SHOWN])
    more = f" and {len(runs) - _SHOWN} more" if len(runs) > _SHOWN else ""
    return f"run{'s' if len(runs) > 1 else ''} {shown}{more}"


def axes_of(counts, formats: dict[str, str | None]) -> Axes:
    """The rule over per-run counts (AXES_SQL's rows: run_id, n, no_tokens, no_flops) and each run's import
    format (None: generated here)."""
    rows = list(counts.itertuples(index=False)) if hasattr(counts, "itertuples") else list(counts)
    no_tokens = [r.run_id for r in rows if r.no_tokens]
    no_flops = [r.run_id for r in rows if r.no_flops]
    missing: dict[str, str] = {}

    counted = {r.run_id: (int(r.no_tokens), int(r.n)) for r in rows}

    def tokens_reason(runs: list[str]) -> str:
        imported = [r for r in runs if formats.get(r)]
        if imported and len(imported) == len(runs):
            fmts = ", ".join(sorted({str(formats[r]) for r in imported}))
            lacking, total = (sum(counted[r][i] for r in runs) for i in (0, 1))
            if lacking < total:  # some records of the log held usage, others (errored ones, say) did not
                return (
                    f"{_names(runs)}: {lacking} of {total} samples imported from {fmts} files hold no token counts "
                    "(their records carry no usage; ttc import --tokenizer NAME recounts them)"
                )
            return (
                f"{_names(runs)} {'was' if len(runs) == 1 else 'were'} imported from {fmts} files without "
                "token counts (ttc import --tokenizer NAME recounts them)"
            )
        return f"{_names(runs)} {'has' if len(runs) == 1 else 'have'} samples without token counts"

    if no_tokens:
        why = tokens_reason(no_tokens)
        missing["tokens"] = f"x in tokens: {why}"
        missing[COST] = f"cost of pass: {why} (its prices are per token)"
    if no_flops:
        untokened = [r for r in no_flops if r in set(no_tokens)]
        if untokened:
            why = tokens_reason(untokened) + ", and FLOPs are priced from them"
        elif all(formats.get(r) for r in no_flops):
            why = (
                f"{_names(no_flops)} {'was' if len(no_flops) == 1 else 'were'} imported without a parameter count "
                "(ttc import --params N or --arch FILE)"
            )
        else:
            why = f"{_names(no_flops)} {'has' if len(no_flops) == 1 else 'have'} samples without stored FLOPs"
        missing["flops"] = f"x in FLOPs: {why}"
    return Axes(missing)


def run_axes(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], model: str | None = None) -> Axes:
    """`axes_of` for the runs' samples (of `model` when given) over a store connection (Store.connect)."""
    counts = con.execute(AXES_SQL, [list(run_ids), model, model]).df()
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    formats: dict[str, str | None] = {}
    if "runs" in tables and len(counts):
        specs = con.execute(
            "SELECT run_id, spec_json FROM runs WHERE list_contains(?, run_id)", [counts["run_id"].tolist()]
        ).fetchall()
        formats = {r: _import_format(s) for r, s in specs}
    return axes_of(counts, formats)
