"""Cached view data for the pages: each function selects from the store, calls backend.metrics, and returns
small frames ready to draw. No metric is computed here; this is the glue between a page's selection and the
metrics core, cached on (store root, shard fingerprint, selection) so a page redraw costs milliseconds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from app_pages._store import CACHE_TTL_S, cached_pool, cached_selection_curves, cached_store, query
from backend.metrics.budget import x_axis
from backend.metrics.confidence import missing_signals
from backend.metrics.coverage import coverage_curve
from backend.metrics.pools import QUESTION_IDS_SQL, SAMPLES_SQL, question_labels

_cache = st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=128)
STUDY_BINS, STUDY_DRAWS, STUDY_SEED = (
    5,
    32,
    0,
)  # the Compute-optimal page's defaults; the Strategies page reuses its table


def _curve_frame(curve, pool, unit: str, label: str, verifier_flops=None, **cols) -> pd.DataFrame:
    x = x_axis(
        pool, curve.k, unit, questions=np.isin(pool.question_ids, curve.question_ids), verifier_flops=verifier_flops
    )
    return pd.DataFrame(
        dict(curve=label, k=curve.k, x=x, mean=curve.mean, low=curve.low, high=curve.high, exact=curve.exact, **cols)
    )


@dataclass(frozen=True)
class CoverageView:
    curve: pd.DataFrame  # k, x, mean, low, high
    fit: dict | None  # a, b, rmse, max_abs_error
    fit_line: pd.DataFrame | None  # k, x, coverage, low, high (band on the extrapolated part), extrapolated
    fit_error: str | None
    n_questions: int
    n_samples: int
    forecast: dict | None = None  # alpha, beta, loglik of the distributional forecast
    forecast_line: pd.DataFrame | None = None  # k, x, coverage, low, high, extrapolated
    forecast_error: str | None = None


def largest_pool(root: str, fp: tuple, run_ids: tuple, combos: tuple, dataset: str | None) -> int:
    """The most samples any question has in the selected pools: the Coverage page extrapolates to 10× it."""
    return max((int(cached_pool(root, fp, run_ids, m, dataset, s).n.max()) for m, s in combos), default=1)


def _forecast_frame(pool, unit: str, ks, pred, low, high, extrapolated) -> pd.DataFrame:
    band = dict(low=np.where(extrapolated, low, np.nan), high=np.where(extrapolated, high, np.nan))
    return pd.DataFrame(dict(k=ks, x=x_axis(pool, ks, unit), coverage=pred, **band, extrapolated=extrapolated))


@_cache
def coverage_view(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    strategy: str | None,
    dataset: str | None,
    unit: str,
    k_max: int | None,
) -> CoverageView:
    """The coverage curve and both forecasts (power law, beta) to `k_max` (None: 10× the pool), each with its
    bootstrap band over questions on the part beyond the pool."""
    from backend.metrics.fit import (
        beta_forecast_band,
        default_k_max,
        fit_beta_binomial,
        fit_coverage_curve,
        power_law_band,
    )

    pool = cached_pool(root, fp, run_ids, model, dataset, strategy)
    curve = coverage_curve(pool)
    frame = _curve_frame(curve, pool, unit, "coverage")
    k_top = max(k_max or default_k_max(int(pool.n.max())), int(curve.k.max()))
    ks = np.geomspace(1.0, float(k_top), 50)
    extrapolated = ks > curve.k.max()
    fit = line = err = None
    try:
        f = fit_coverage_curve(curve)
        low, high = power_law_band(curve.per_question, curve.k, ks)
        line = _forecast_frame(pool, unit, ks, f.predict(ks), low, high, extrapolated)
        fit = dict(a=f.a, b=f.b, rmse=f.rmse, max_abs_error=f.max_abs_error)
    except ValueError as e:  # too few points with coverage > 0: show the curve, say why there is no fit
        err = str(e)
    forecast = forecast_line = forecast_err = None
    try:
        bf = fit_beta_binomial(pool.n, pool.n_correct)
        low, high = beta_forecast_band(pool.n, pool.n_correct, ks, start=bf)
        forecast_line = _forecast_frame(pool, unit, ks, bf.predict(ks), low, high, extrapolated)
        forecast = dict(alpha=bf.alpha, beta=bf.beta, loglik=bf.loglik)
    except ValueError as e:  # fewer than 2 questions
        forecast_err = str(e)
    return CoverageView(
        frame, fit, line, err, pool.n_questions, int(pool.n.max()), forecast, forecast_line, forecast_err
    )


@dataclass(frozen=True)
class SelectionView:
    curves: pd.DataFrame  # curve, k, x, mean, low, high
    verifier_quality: pd.DataFrame
    verifiers: list
    notes: list  # selection rules this pool cannot serve, and why


@_cache
def selection_view(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    strategy: str | None,
    dataset: str | None,
    unit: str,
    verifier: str | None,
    threshold: float,
    draws: int,
) -> SelectionView:
    from backend.metrics.verifier_quality import verifier_quality_table

    pool = cached_pool(root, fp, run_ids, model, dataset, strategy)
    verifiers = sorted(pool.scores)
    if verifier is not None and verifier not in verifiers:
        verifier = None
    frames = [_curve_frame(coverage_curve(pool), pool, unit, "coverage (oracle)")]
    vflops = None
    if verifier is not None and unit == "flops":  # best-of-N pays a verifier pass per sample, on the one ledger
        from backend.metrics.strategy_table import verifier_flops_per_question

        con = cached_store(root).connect()
        try:
            vflops = verifier_flops_per_question(con, list(run_ids), model, verifier, pool)
        finally:
            con.close()
    curves = cached_selection_curves(root, fp, run_ids, model, dataset, strategy, verifier, draws)
    for name, curve in curves.items():
        verified = curve.meta.get("verifier") is not None  # best-of-N rules pay their verifier's passes
        frames.append(_curve_frame(curve, pool, unit, name, verifier_flops=vflops if verified else None))
    vq = verifier_quality_table(pool, threshold) if verifiers else pd.DataFrame()
    return SelectionView(pd.concat(frames, ignore_index=True), vq, verifiers, missing_signals(pool))


@_cache
def cost_rows(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    strategy: str | None,
    dataset: str | None,
    verifier: str | None,
    draws: int,
) -> pd.DataFrame:
    """(model, strategy, budget, input_tokens, output_tokens, success_rate) for each selection rule at each k."""
    from backend.metrics.cost import curve_cost_rows

    pool = cached_pool(root, fp, run_ids, model, dataset, strategy)
    if verifier is not None and verifier not in pool.scores:
        verifier = None
    curves = cached_selection_curves(root, fp, run_ids, model, dataset, strategy, verifier, draws)
    rows = [curve_cost_rows(model, name, curve, pool) for name, curve in curves.items()]
    return pd.concat(rows, ignore_index=True)


@_cache
def study_inputs(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    dataset: str | None,
    verifier: str | None,
    n_bins: int,
    draws: int,
    seed: int,
    pool_rules: bool = True,
    confidence_rules: bool = True,
):
    """backend.metrics.study.study_inputs: the accuracy table over every configuration and both kinds of bins,
    the expensive part of a study (picklable, so st.cache_data keeps it until the store changes). `pool_rules=False`:
    the searches' rows alone, which the Strategies page draws (every pool rule evaluated at every budget is what
    makes a table slow; the Compute-optimal page reads the whole one); `confidence_rules=False`: without the
    confidence-aware rules, the costliest of them (the Strategies page's paired section, until one is picked)."""
    from backend.metrics.study import study_inputs as build

    pool = cached_pool(root, fp, run_ids, model, dataset, "sample")  # the one the Strategies curves drew from
    con = cached_store(root).connect()
    try:
        return build(
            con,
            list(run_ids),
            model,
            dataset=dataset,
            verifier=verifier,
            n_bins=n_bins,
            draws=draws,
            seed=seed,
            pool=pool,
            pool_rules=pool_rules,
            confidence_rules=confidence_rules,
        )
    finally:
        con.close()


@_cache
def compute_optimal_view(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    dataset: str | None,
    verifier: str | None,
    bins: str,
    n_bins: int,
    draws: int,
    seed: int,
):
    """The ComputeOptimalStudy for the page's selection; switching the bin kind reuses the cached inputs."""
    from backend.metrics.study import study_from_inputs

    return study_from_inputs(
        study_inputs(root, fp, run_ids, model, dataset, verifier, n_bins, draws, seed), bins=bins, seed=seed
    )


@_cache
def compute_optimal_tables(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    dataset: str | None,
    verifier: str | None,
    bins: str,
    n_bins: int,
    draws: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's `report()` (a paired test per bin and budget) and `cells_by_bin()`, computed once per selection:
    moving back to the page redraws them without re-running every paired test."""
    study = compute_optimal_view(root, fp, run_ids, model, dataset, verifier, bins, n_bins, draws, seed)
    return study.report(), study.cells_by_bin()


@_cache
def compute_optimal_compare(
    root: str,
    fp: tuple,
    run_ids: tuple,
    model: str,
    dataset: str | None,
    verifier: str | None,
    bins: str,
    n_bins: int,
    draws: int,
    seed: int,
    a: str,
    b: str,
    bin: str,
) -> pd.DataFrame:
    """`ComputeOptimalStudy.compare(a, b, bin)` of the page's study, kept for the selection."""
    study = compute_optimal_view(root, fp, run_ids, model, dataset, verifier, bins, n_bins, draws, seed)
    return study.compare(a, b, bin)


def paired_table(
    root: str, fp: tuple, run_ids: tuple, model: str, dataset: str | None, verifier: str | None, confidence_rules: bool
):
    """The study inputs whose table the Strategies page's paired section compares in (the pages' defaults), with
    the confidence-aware rules or without them."""
    args = (root, fp, run_ids, model, dataset, verifier, STUDY_BINS, STUDY_DRAWS, STUDY_SEED)
    # the whole table called as the Compute-optimal page calls it: a cache key holds the arguments as passed
    return study_inputs(*args) if confidence_rules else study_inputs(*args, confidence_rules=False)


@_cache
def compare_in_table(
    root: str, fp: tuple, run_ids: tuple, model: str, dataset: str | None, verifier: str | None, a: str, b: str
) -> pd.DataFrame:
    """backend.metrics.paired.compare_configurations of two configurations of the Strategies page's paired section:
    in the table without the confidence-aware rules unless one of the two is such a rule (then the whole table,
    which the Compute-optimal page reads too); the rows compared are the same in both."""
    from backend.metrics.confidence import RULES
    from backend.metrics.paired import compare_configurations

    inputs = paired_table(root, fp, run_ids, model, dataset, verifier, a in RULES or b in RULES)
    return compare_configurations(inputs.table, a, b)


@_cache
def axes(root: str, fp: tuple, run_ids: tuple, model: str | None = None):
    """backend.metrics.axes.run_axes: which compute axes the runs (of `model`) can be drawn on, and why not."""
    from backend.metrics.axes import run_axes

    con = cached_store(root).connect()
    try:
        return run_axes(con, list(run_ids), model)
    finally:
        con.close()


@_cache
def pass_at_1(root: str, fp: tuple, run_ids: tuple, model: str, dataset: str | None) -> float:
    pool = cached_pool(root, fp, run_ids, model, dataset, "sample")
    return float(coverage_curve(pool, [1], n_boot=0).mean[0])


@_cache
def decode_flops_per_token(root: str, fp: tuple, run_ids: tuple) -> dict:
    """Per model, decode FLOPs per generated token: their ratio between two models is the size ratio M of the
    FLOPs-matched comparison, read from the ledger instead of typed in."""
    df = cached_store(root).query(
        """SELECT model, sum(decode_flops) / sum(completion_tokens) AS f FROM samples
           WHERE list_contains(?, run_id) AND completion_tokens > 0 AND decode_flops IS NOT NULL GROUP BY model""",
        [list(run_ids)],
    )
    return dict(zip(df["model"], df["f"]))


@_cache
def search_curves(
    root: str, fp: tuple, run_ids: tuple, model: str, dataset: str | None, verifier: str | None
) -> pd.DataFrame:
    """The model's search configurations, one row per configuration × FLOP budget of the study's StrategyTable
    (accuracy over the questions covered, `questions` of `of_questions`, the statuses), with an x per unit:
    samples = FLOPs spent / one pooled sample's FLOPs (the table's equivalent samples), flops = FLOPs spent, and
    tokens = uncached prompt + generated tokens of a search's nodes (the table's `tokens`), what the pool curves
    count for one prompt and k completions."""
    store = cached_store(root)
    if store.query(
        "SELECT 1 FROM nodes WHERE list_contains(?, run_id) AND model = ? LIMIT 1", [list(run_ids), model]
    ).empty:
        return pd.DataFrame()  # no search: no table to build
    t = study_inputs(
        root, fp, run_ids, model, dataset, verifier, STUDY_BINS, STUDY_DRAWS, STUDY_SEED, pool_rules=False
    ).table
    cells = t.cells()
    cells = cells[cells["kind"] == "search"].reset_index(drop=True)
    if cells.empty:
        return cells
    covered = cells["questions"] > 0
    return cells.assign(
        x_samples=cells["spent_flops"] / t.one_sample_flops,
        x_flops=cells["spent_flops"],
        x_tokens=cells["tokens"].where(covered),
    )


def samples_page(
    store, run_id: str | None, model: str | None, question_key: str | None, correct: str, text: str, limit: int
) -> pd.DataFrame:
    """The filtered samples; `question_key` is a question's identity (question_choices maps labels to it)."""
    graded = correct if correct in ("correct", "wrong") else None
    params = [run_id or None, model or None, question_key or None, graded, text or None, int(limit)]
    return query(store, SAMPLES_SQL, params)


def sample_scores(store, run_id: str, model: str, question_id: str, sample_idx: int) -> pd.DataFrame:
    return query(
        store,
        "SELECT verifier, score, step_scores FROM scores WHERE run_id=? AND model=? AND question_id=? AND sample_idx=? ORDER BY verifier",
        [run_id, model, question_id, int(sample_idx)],
    )


def question_row(store, run_id: str, question_id: str) -> pd.DataFrame:
    return query(store, "SELECT * FROM questions WHERE run_id=? AND question_id=? LIMIT 1", [run_id, question_id])


REF_SEP = "|"  # joins the parts of a sample's or a tree's identity in the URL (`%7C` there)

TREES_SQL = """
SELECT DISTINCT run_id, model, strategy, config, question_id, coalesce(question_key, '~' || question_id) AS question_key
FROM nodes ORDER BY ALL"""


def sample_ref(run_id: str, model: str, question_key: str, sample_idx: int) -> str:
    """A sample's identity in the URL: its run, model, question (by key, store/keys.py) and index in the pool.
    Positions in a list shift as runs are added; these do not."""
    return REF_SEP.join((str(run_id), str(model), str(question_key), str(int(sample_idx))))


def tree_ref(run_id: str, model: str, strategy: str, question_key: str, config: str) -> str:
    """A search tree's identity in the URL: run, model, strategy, question key, and a digest of its stored
    configuration (parameters, budget, verifier, seed: the JSON is too long for a link)."""
    digest = hashlib.sha256(config.encode("utf-8")).hexdigest()[:10]
    return REF_SEP.join((str(run_id), str(model), str(strategy), str(question_key), digest))


def _tree_label(question_id: str, strategy: str, config: str, model: str, run_id: str) -> str:
    """`q7 · beam_search[n=4,width=2] · prm · budget 1.2 TFLOPs · model · run`: the search's label as the
    analysis pages write it (backend.metrics.strategy_table.search_label), its budget, where it ran."""
    from backend.metrics.strategy_table import search_label
    from backend.visual import eng

    record = json.loads(config)
    budget = record.get("budget_flops")
    spend = "no budget" if budget is None else f"budget {eng(float(budget), 'FLOPs')}"
    return f"{question_id} · {search_label(strategy, record)} · {spend} · {model} · {run_id}"


def tree_choices(store) -> pd.DataFrame:
    """Every stored search tree: its identity (`ref`, for the URL), its question's key and a label naming the
    search, its budget, model and run."""
    df = query(store, TREES_SQL)
    refs = pd.Series([tree_ref(r.run_id, r.model, r.strategy, r.question_key, r.config) for r in df.itertuples()])
    twice = refs.duplicated(keep=False)  # one question under two ids of a run: the id tells the trees apart
    refs = refs.where(~twice, refs + REF_SEP + df["question_id"].astype(str))
    labels = [_tree_label(r.question_id, r.strategy, r.config, r.model, r.run_id) for r in df.itertuples()]
    return df.assign(ref=refs.to_numpy(), label=labels)


def trees_of_sample(trees: pd.DataFrame, sample) -> pd.DataFrame:
    """The trees of a sample's question (by key; a store without keys: by run and id), the sample's model and run
    first: the searches that answered the question the sample answers."""
    same = (trees["question_key"] == sample["question_key"]) | (
        (trees["run_id"] == sample["run_id"]) & (trees["question_id"] == sample["question_id"])
    )
    out = trees[same]
    rank = (out["model"] != sample["model"]).astype(int) * 2 + (out["run_id"] != sample["run_id"]).astype(int)
    return out.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns=["_rank"])


def tree_nodes(store, run_id: str, model: str, strategy: str, config: str, question_id: str) -> pd.DataFrame:
    return query(
        store,
        """SELECT node_id, parent_id, depth, kind, step_score, is_final, selected, answer, correct, completion_tokens,
                  generator_flops, verifier_flops, step_text
           FROM nodes WHERE run_id=? AND model=? AND strategy=? AND config=? AND question_id=? ORDER BY depth, node_id""",
        [run_id, model, strategy, config, question_id],
    )


def selected_path(nodes: pd.DataFrame) -> pd.DataFrame:
    """The nodes from the root to the search's pick (★), in order: the answer's reasoning step by step (empty when
    the search picked nothing)."""
    picked = nodes[nodes["selected"].fillna(False).astype(bool)]
    if picked.empty:
        return nodes.iloc[0:0]
    parent = dict(zip(nodes["node_id"].astype(int), nodes["parent_id"].astype(int)))
    chain, node = [], int(picked["node_id"].iloc[0])
    while node in parent and node not in chain:
        chain.append(node)
        node = parent[node]
    return nodes.set_index("node_id").loc[chain[::-1]].reset_index()


def question_choices(store, run_id: str | None, model: str | None) -> dict[str, str]:
    """{label: question key} of the questions sampled: a label is the id, with a short key suffix where two
    questions share one (runs of other knobs), so the filter never merges different questions."""
    df = query(store, QUESTION_IDS_SQL, [run_id or None, model or None])
    labels = question_labels(df["question_id"].tolist(), df["question_key"].tolist())
    return dict(zip(labels.tolist(), df["question_key"]))
