"""Audit of the FLOPs ledger: every FLOPs figure of a real study recomputed from the raw stored token counts.

Runs a small study with the default model on llama.cpp through the product's spec and worker path (a pool of
`--samples` per question scored by `self_verify`, beam search and a sequential:parallel sweep of revisions at the
`--budgets`, then one adaptive run on the same questions), builds the product's compute-optimal study
(`ComputeOptimalStudy.report()` and `cells_by_bin()`) and the adaptive run's `allocation_summary`, and recomputes
every FLOPs figure in them with its own DuckDB SQL over the store's views:
- the unit "1 sample" and every budget of the report (budget_flops, budget_samples) and of every stored search
  record (nodes.config's budget_flops);
- every configuration's spent_flops in every bin: a pool rule at the largest k whose spend fits the budget
  (the prompt's prefill once + k · (mean decode + mean verifier pass for best-of-N)), a search at what the
  nodes of its run on each question spent (the largest cap whose spend fits), averaged over the bin's covered
  questions;
- the adaptive run's total and spent FLOPs, and each logged round's remaining budget and bounds.

The span formula, Σ_{t=a+1..b} (2·N + 4·L·d_attn·t) = 2·N·(b−a) + 4·L·d_attn·(a+1+b)(b−a)/2, is written here in
SQL; N (every tensor but the token-embedding lookup, the output projection kept: the embedding when tied), L and
d_attn = n_heads · head_dim are read from the GGUF header with the `gguf` package, not from the product. What is
taken from the product: configuration names and which questions form each bin (neither is a FLOPs figure).
Every figure must match to 1e-9 relative.

    python -m bench.ledger_audit [--per-level 3] [--samples 4] [--max-tokens 48] [--budgets 2 4] [--store DIR]

Prints the figures compared, then `RESULT mismatches=<m> figures=<n>`; exits 1 when any figure mismatches
(each listed)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.config import parse_spec  # noqa: E402
from backend.execution.allocation import allocation_summary  # noqa: E402
from backend.execution.execute import execute  # noqa: E402
from backend.execution.sampling import prepare_run  # noqa: E402
from backend.metrics.pools import load_pool  # noqa: E402
from backend.metrics.strategy_table import search_label  # noqa: E402
from backend.metrics.study import compute_optimal_study  # noqa: E402
from backend.models.registry import DEFAULT_MODEL, resolve_model  # noqa: E402
from store import Store  # noqa: E402

RTOL = 1e-9
SLACK = 1e-6  # the table's float slack on a budget (strategy_table.OVER_BUDGET_RTOL), applied the same way here
VERIFIER = "self_verify"
LEVELS = [  # the first two levels of examples/compute_optimal.yaml
    {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+"], "allow_negation": False},
    {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+", "-", "*"]},
]


def _task(args) -> dict:
    return {
        "kind": "reasoning_gym",
        "datasets": [
            {"name": "basic_arithmetic", "size": args.per_level, "level": i + 1, "config": cfg}
            for i, cfg in enumerate(LEVELS)
        ],
    }


def _common(args) -> dict:
    return {
        "models": [DEFAULT_MODEL],
        "task": _task(args),
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": args.max_tokens,
        "seed": 0,
        "engine": {"kind": "llamacpp", "n_parallel": 4, "n_ctx_per_slot": 1024},
    }


def study_spec(args):
    step = max(4, args.max_tokens // 3)
    return parse_spec(
        {
            "name": "ledger-audit",
            **_common(args),
            "samples_per_question": args.samples,
            "verifiers": [VERIFIER],
            "strategies": [
                {"name": "beam_search", "config": {"n": 2, "width": 2, "max_tokens": step, "max_rounds": 3}},
                {"name": "sequential_revisions", "config": {"max_tokens": args.max_tokens}, "ratios": ["1:0", "0:1"]},
            ],
            "budgets": args.budgets,
        }
    )


def adaptive_spec(args):
    return parse_spec(
        {
            "name": "ledger-audit-adaptive",
            **_common(args),
            "samples_per_question": args.samples * 2,
            "adaptive": {
                "total_budget": args.adaptive_budget,
                "per_question": True,
                "stop": "beta",
                "confidence": 0.9,
                "first_round": 2,
                "round_samples": 2,
            },
        }
    )


# ---- the architecture, from the GGUF header -------------------------------------------------------------------
def gguf_arch(path: Path) -> tuple[int, int, int]:
    """(N, n_layers, d_attn) of a GGUF model, read with the `gguf` package."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def meta(key: str):
        field = reader.fields.get(key)
        if field is None:
            return None
        value = field.parts[field.data[0]]
        return bytes(value).decode() if field.types and field.types[0].name == "STRING" else int(value[0])

    arch = meta("general.architecture")
    n_layers, d_model, n_heads = (
        meta(f"{arch}.{k}") for k in ("block_count", "embedding_length", "attention.head_count")
    )
    d_k = meta(f"{arch}.attention.key_length") or d_model // n_heads
    d_v = meta(f"{arch}.attention.value_length") or d_model // n_heads
    sizes = {t.name: int(np.prod(t.shape)) for t in reader.tensors}
    total = sum(sizes.values())
    n_params = total if "output.weight" not in sizes else total - sizes.get("token_embd.weight", 0)
    return n_params, n_layers, n_heads * (d_k + d_v) // 2


def span_macro(con, name: str, arch: tuple[int, int, int]) -> None:
    """span(a, b): FLOPs of positions a+1 .. b, Σ 2N + 4·L·d_attn·t, in closed form (0 when b <= a)."""
    n, layers, d_attn = arch
    con.execute(
        f"""CREATE OR REPLACE TEMP MACRO {name}(a, b) AS
            2.0 * {n} * greatest(CAST(b AS DOUBLE) - a, 0)
            + 4.0 * {layers} * {d_attn} * (CAST(a AS DOUBLE) + 1 + b) * greatest(CAST(b AS DOUBLE) - a, 0) / 2"""
    )


# ---- the recomputation ----------------------------------------------------------------------------------------
class Audit:
    def __init__(self) -> None:
        self.figures = 0
        self.mismatches: list[str] = []

    def check(self, what: str, product, audit) -> None:
        p, a = float(product), float(audit)
        if math.isnan(p) and math.isnan(a):
            return  # a cell neither side has: no figure
        self.figures += 1
        ok = not (math.isnan(p) or math.isnan(a)) and abs(p - a) <= RTOL * max(abs(p), abs(a))
        if not ok:
            self.mismatches.append(f"{what}: product {p!r} audit {a!r}")


def spec_of(con, run_id: str) -> dict:
    return json.loads(con.execute("SELECT spec_json FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])


def unit_of(con, run_id: str, model: str, max_tokens: int) -> float:
    """'1 sample' of the run's distinct questions (by key: a question drawn twice is one): mean over them of
    span(0, P_q) + span(P_q, P_q + max_tokens), P_q the question's stored prompt tokens."""
    return con.execute(
        """SELECT avg(span(0, p) + span(p, p + ?)) FROM (
               SELECT question_key, max(prompt_tokens) AS p FROM samples WHERE run_id = ? AND model = ? GROUP BY 1)""",
        [max_tokens, run_id, model],
    ).fetchone()[0]


POOL_SQL = """
WITH s AS (SELECT * FROM samples WHERE run_id = $run AND model = $model),
     v AS (SELECT s.question_key, avg(span(c.verifier_cached_tokens, c.verifier_prompt_tokens)
                  + span(c.verifier_prompt_tokens, c.verifier_prompt_tokens + c.verifier_completion_tokens)) AS ver
           FROM scores c JOIN s USING (run_id, model, question_id, sample_idx) WHERE c.verifier = $verifier GROUP BY 1)
SELECT question_key, count(*) AS n, span(0, max(prompt_tokens)) AS once,
       avg(span(prompt_tokens, prompt_tokens + completion_tokens)) AS dec, coalesce(any_value(v.ver), 0) AS ver
FROM s LEFT JOIN v USING (question_key) GROUP BY question_key
"""

NODES_SQL = """
WITH n AS (SELECT * FROM nodes WHERE run_id = $run AND model = $model),
     g AS (SELECT strategy, config, question_id, any_value(question_key) AS question_key, count(*) - 1 AS generated,
                  sum(CASE WHEN kind = 'root' THEN 0.0
                      ELSE span(ledger_cached_tokens, prompt_tokens) + span(prompt_tokens, prompt_tokens + completion_tokens)
                      END) AS gen,
                  count(*) FILTER (WHERE kind <> 'root' AND ledger_cached_tokens IS NULL)
                  + count(*) FILTER (WHERE verifier_pass_prompt_tokens IS NULL) AS unpriced
           FROM n GROUP BY 1, 2, 3),
     p AS (SELECT strategy, config, question_id, unnest(verifier_pass_prompt_tokens) AS vp,
                  unnest(verifier_pass_cached_tokens) AS vc, unnest(verifier_pass_completion_tokens) AS vd FROM n),
     v AS (SELECT strategy, config, question_id, sum(span(vc, vp) + span(vp, vp + vd)) AS ver FROM p GROUP BY 1, 2, 3)
SELECT g.*, coalesce(v.ver, 0) AS ver FROM g LEFT JOIN v USING (strategy, config, question_id)
"""


def audit_study(audit: Audit, con, study, run_id: str, model: str, budgets_samples: list[float]) -> None:
    spec = spec_of(con, run_id)
    unit = unit_of(con, run_id, model, spec["max_tokens"])
    grid = np.asarray(sorted(budgets_samples), dtype=np.float64) * unit
    report = study.report()
    for _, row in report.iterrows():
        b = int(np.searchsorted(grid * (1 + 1e-6), row["budget_flops"]))
        b = min(b, len(grid) - 1)
        audit.check(f"report bin={row['bin']} budget_flops", row["budget_flops"], grid[b])
        audit.check(f"report bin={row['bin']} budget_samples", row["budget_samples"], sorted(budgets_samples)[b])

    loaded = load_pool(con, [run_id], model, verifiers=[])  # the study's question order and keys, no FLOPs figure
    assert list(loaded.question_ids) == list(study.table.question_ids)
    qids = list(loaded.question_keys)
    pos = {q: i for i, q in enumerate(qids)}
    pool = con.execute(POOL_SQL, {"run": run_id, "model": model, "verifier": VERIFIER}).df().set_index("question_key")
    pool = pool.reindex(qids)
    once, dec, ver = (pool[c].to_numpy(np.float64) for c in ("once", "dec", "ver"))
    n_min = int(pool["n"].min())

    def pool_spent(name: str) -> np.ndarray:  # (B, Q)
        per = dec + (ver if name.startswith(("best_of_n[", "weighted_best_of_n[")) else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.floor((grid[:, None] - once[None, :]) / per[None, :])
        k = np.minimum(np.maximum(np.nan_to_num(k, nan=0.0), 0), n_min)
        return np.where(k > 0, once[None, :] + k * per[None, :], np.nan)

    nodes = con.execute(NODES_SQL, {"run": run_id, "model": model}).df()
    unpriced = int(nodes["unpriced"].sum())
    if unpriced:
        audit.mismatches.append(f"{unpriced} node(s) without the token counts their FLOPs are priced from")
    nodes["spent"] = nodes["gen"] + nodes["ver"]
    records = [json.loads(c) for c in nodes["config"]]
    nodes["label"] = [search_label(s, r) for s, r in zip(nodes["strategy"], records)]
    nodes["cap"] = [r.get("budget_flops") for r in records]
    for cap, verifier in {(r.get("budget_flops"), r.get("verifier")) for r in records}:
        if verifier != VERIFIER:
            audit.mismatches.append(f"a search judged by {verifier!r}, not {VERIFIER} (the audit prices {VERIFIER})")
        near = grid[int(np.argmin(np.abs(grid - cap)))]
        audit.check("search record budget_flops", cap, near)

    def search_spent(label: str) -> np.ndarray:  # (B, Q): per budget, the largest cap whose run spent within it
        out = np.full((len(grid), len(qids)), np.nan)
        mine = nodes[(nodes["label"] == label) & (nodes["generated"] > 0)]
        mine = mine[mine["spent"] <= mine["cap"] * (1 + SLACK)]
        # a question asked twice (two ids of one key) has two trees per cap: their mean, as runs of several seeds
        per_cap = mine.groupby(["question_key", "cap"], as_index=False)["spent"].mean()
        for key, rows in per_cap.groupby("question_key"):
            rows = rows.sort_values("cap")
            for j, budget in enumerate(grid):
                fit = rows[rows["spent"] <= budget * (1 + SLACK)]
                if len(fit):
                    out[j, pos[key]] = fit["spent"].iloc[-1]
        return out

    cells = study.cells_by_bin()
    bins = {str(lv): m for lv, m in study.bins.masks().items()} | {"all": np.ones(len(qids), dtype=bool)}
    expected = {
        name: (pool_spent(name) if kind == "pool" else search_spent(name))
        for name, kind in zip(study.table.configurations, study.table.kind)
    }
    for _, row in cells.iterrows():
        b = int(np.argmin(np.abs(grid - row["budget_flops"])))
        per_q = expected[row["configuration"]][b][bins[row["bin"]]]
        mean = float(np.nanmean(per_q)) if np.isfinite(per_q).any() else float("nan")
        audit.check(f"cell bin={row['bin']} {row['configuration']} budget={b} spent_flops", row["spent_flops"], mean)


ADAPTIVE_SQL = """
WITH s AS (SELECT * FROM samples WHERE run_id = $run AND model = $model)
SELECT (SELECT sum(span(0, p)) FROM (SELECT max(prompt_tokens) AS p FROM s GROUP BY question_id))
       + (SELECT sum(span(prompt_tokens, prompt_tokens + completion_tokens)) FROM s) AS spent
"""

ROUNDS_SQL = """
WITH a AS (SELECT * FROM allocations WHERE run_id = $run AND model = $model),
     s AS (SELECT * FROM samples WHERE run_id = $run AND model = $model),
     given AS (SELECT a.round, s.* FROM a JOIN s ON s.question_id = a.question_id
               AND s.sample_idx >= a.first_idx AND s.sample_idx < a.first_idx + a.samples),
     r AS (SELECT DISTINCT round FROM a)
SELECT r.round,
       coalesce((SELECT sum(p) FROM (SELECT span(0, max(prompt_tokens)) AS p FROM given g
                                     WHERE g.round < r.round GROUP BY question_id)), 0)
       + coalesce((SELECT sum(span(prompt_tokens, prompt_tokens + completion_tokens)) FROM given g
                   WHERE g.round < r.round), 0) AS spent_before
FROM r ORDER BY 1
"""


def audit_adaptive(audit: Audit, con, store, run_id: str, model: str) -> None:
    summary = allocation_summary(store, run_id, model)
    spec = spec_of(con, run_id)
    a, max_tokens = spec["adaptive"], spec["max_tokens"]
    n_q = con.execute("SELECT count(DISTINCT question_id) FROM questions WHERE run_id = ?", [run_id]).fetchone()[0]
    size = a["total_budget"] * (n_q if a.get("per_question") else 1)
    total = size * unit_of(con, run_id, model, max_tokens) if a.get("unit", "samples") == "samples" else size
    audit.check("adaptive total_flops", summary.total_flops, total)
    spent = con.execute(ADAPTIVE_SQL, {"run": run_id, "model": model}).fetchone()[0]
    audit.check("adaptive spent_flops", summary.spent_flops, spent)
    before = con.execute(ROUNDS_SQL, {"run": run_id, "model": model}).df().set_index("round")["spent_before"]
    prompts = dict(
        con.execute(
            "SELECT question_id, max(prompt_tokens) FROM samples WHERE run_id = ? AND model = ? GROUP BY 1",
            [run_id, model],
        ).fetchall()
    )
    log = summary.decisions
    for rnd, rows in log.groupby("round"):
        audit.check(
            f"adaptive round {rnd} remaining_flops", rows["remaining_flops"].iloc[0], max(0.0, total - before[rnd])
        )
    for _, row in log.iterrows():
        p = prompts[row["question_id"]]
        one, pre = con.execute("SELECT span(?, ? + ?), span(0, ?)", [p, p, max_tokens, p]).fetchone()
        pre = pre if row["samples_before"] == 0 else 0.0
        where = f"adaptive round {row['round']} {row['question_id']}"
        audit.check(f"{where} sample_bound", row["sample_bound"], one)
        audit.check(f"{where} prefill_bound", row["prefill_bound"], pre)
        audit.check(f"{where} flops_bound", row["flops_bound"], pre + row["samples"] * one if row["samples"] else 0.0)


def run_to_completion(spec, store: Store) -> str:
    prepared = prepare_run(spec)
    execute(prepared, store)
    return prepared.run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--per-level", type=int, default=3, help="questions per difficulty level (two levels)")
    ap.add_argument("--samples", type=int, default=4, help="pool samples per question (the adaptive cap: twice)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--budgets", type=float, nargs="+", default=[2.0, 4.0], help="search budgets, in samples")
    ap.add_argument("--adaptive-budget", type=float, default=3.0, help="the adaptive run's mean samples per question")
    ap.add_argument("--store", default=None, help="a store to run in (reused: what is there is not generated again)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    tmp = None if args.store else tempfile.TemporaryDirectory(prefix="ledger-audit-")
    store = Store.open(args.store or tmp.name)  # type: ignore[union-attr]
    study_run = run_to_completion(study_spec(args), store)
    adaptive_run = run_to_completion(adaptive_spec(args), store)
    model = resolve_model(DEFAULT_MODEL)
    arch = gguf_arch(Path(model.path))
    product = model.arch
    print(f"{DEFAULT_MODEL}: N={arch[0]} n_layers={arch[1]} d_attn={arch[2]} (GGUF header)", flush=True)
    con = store.connect()
    audit = Audit()
    try:
        if product is not None and (product.n_params, product.n_layers, product.attention_width) != arch:
            audit.mismatches.append(f"the product's ModelArch {product} disagrees with the GGUF header {arch}")
        span_macro(con, "span", arch)
        study = compute_optimal_study(con, [study_run], model.name, verifier=VERIFIER)
        audit_study(audit, con, study, study_run, model.name, list(args.budgets))
        study_figures = audit.figures
        audit_adaptive(audit, con, store, adaptive_run, model.name)
    finally:
        con.close()
    cells = study.cells_by_bin()
    pd.set_option("display.width", 200)
    print(cells[["bin", "configuration", "budget_samples", "spent_flops", "questions"]].to_string(index=False))
    print(
        f"compute-optimal report: {study_figures} figures; adaptive summary: {audit.figures - study_figures} figures; "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    for m in audit.mismatches:
        print(f"MISMATCH {m}")
    print(f"RESULT mismatches={len(audit.mismatches)} figures={audit.figures}")
    if tmp is not None:
        tmp.cleanup()
    sys.exit(1 if audit.mismatches else 0)


if __name__ == "__main__":
    main()
