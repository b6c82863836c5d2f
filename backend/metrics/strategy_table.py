"""accuracy[configuration, budget, question] on one FLOPs axis: every strategy the user ran, side by side.

Compute-optimal allocation (Snell et al. 2024) chooses among *configurations* — a strategy with its
hyper-parameters and selection rule — at matched compute. Two sources feed the one table it chooses from:

- **searches** (the `nodes` table): per question, the correctness of the node the strategy selected, placed at
  what its ledger actually spent (generator + verifier FLOPs of every node), not at its cap: at budget b a
  question's cell is the configuration's run on that question (the largest cap among its runs) that spent at
  most b — so a search that stopped early also counts at smaller budgets, as a pool rule's k is chosen per
  question. A run that spent more than its own cap broke the ledger and is never a candidate (status
  `over_budget` where nothing else fits).
- **pool rules** (majority, best-of-N and weighted best-of-N over the sampling pool, and the confidence-aware
  votes its samples carry signals for): at each budget, per
  question, the largest k whose ledger cost fits — one prefill of the prompt (the prefix cache serves the
  rest) + k · (that question's mean decode + its mean verifier pass) — and the rule's expected correctness
  over random k-subsets at that k (`selection_curves`). Up to `EXACT_K` every k is evaluated; above it the k
  is rounded down to a grid of `K_PER_DOUBLING` points per doubling, so the rule never spends more than the
  budget. A budget beyond the pool uses the whole pool (status `pool_exhausted`).

A cell that cannot run is NaN with a status that says why (`not_run`: the configuration did not cover this
question at this budget; `unaffordable`: the budget does not pay one round / one sample), never 0 and never
dropped: compute-optimal then treats the configuration as unavailable wherever it misses a question.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from backend.ledger import samples_affordable
from backend.metrics.budget import question_costs
from backend.metrics.confidence import available_rules
from backend.metrics.pools import KEY_OR_LABEL_SQL, Pool
from backend.metrics.selection import selection_curves

STATUSES = ("ok", "not_run", "unaffordable", "pool_exhausted", "stopped_early", "over_budget")
OK, NOT_RUN, UNAFFORDABLE, POOL_EXHAUSTED, STOPPED_EARLY, OVER_BUDGET = range(len(STATUSES))
STOPPED_EARLY_FRACTION = 0.5
"""A search that spent less than this fraction of its budget stopped early (every candidate finished, or no
further round fitted); its accuracy is kept and the cell says so."""
OVER_BUDGET_RTOL = 1e-6  # float summation slack on a ledger that is a hard limit
BUDGET_MERGE_RTOL = 1e-3  # searches of several runs at "the same" budget land on one grid point
EXACT_K = 64
K_PER_DOUBLING = 8
RECORD_KEYS = ("budget_flops", "verifier", "seed", "ratio")  # parts of a stored search record that are not parameters


@dataclass(frozen=True)
class StrategyTable:
    """Accuracy of every configuration at every FLOP budget on every question of one model's pool."""

    configurations: list[str]  # (C,)
    kind: np.ndarray  # (C,) "pool" | "search"
    strategy: np.ndarray  # (C,) the strategy (or pool rule) a configuration belongs to
    ratio: np.ndarray  # (C,) sequential:parallel ratio of a sweep point, "" otherwise
    budgets: np.ndarray  # (B,) FLOPs per question, increasing
    question_ids: np.ndarray  # (Q,)
    accuracy: np.ndarray  # (C, B, Q) expected correctness; NaN where the cell did not run
    spent: np.ndarray  # (C, B, Q) FLOPs the ledger charged (pool rules: the ledger cost of k samples)
    samples: np.ndarray  # (C, B, Q) k for a pool rule, completions generated for a search
    tokens: np.ndarray  # (C, B, Q) tokens processed: uncached prompt + generated (a pool rule: one prompt + k samples)
    status: np.ndarray  # (C, B, Q) int8 index into STATUSES
    one_sample_flops: float  # "1 sample" of these questions (backend.pricing): the unit of `budget_samples`
    notes: tuple[str, ...] = ()
    # "flops", or "samples" where the runs have no FLOPs (backend/metrics/axes.py): every sample then costs 1, so
    # budgets, spend and one_sample_flops count samples per question
    budget_unit: str = "flops"

    @property
    def budget_samples(self) -> np.ndarray:
        """(B,) each budget in samples, the spec's budget unit (backend.pricing): the unit a reader has a feel for."""
        return self.budgets / self.one_sample_flops

    def index(self, configuration: str) -> int:
        try:
            return self.configurations.index(configuration)
        except ValueError:
            raise ValueError(
                f"configuration {configuration!r} is not in the table; allowed: {', '.join(self.configurations)}"
            ) from None

    def cells(self, questions=None) -> pd.DataFrame:
        """One row per configuration × budget (over `questions`, a bool mask, or all): accuracy over the questions
        it covers, how many it covers, and how many cells are in each non-ok status."""
        mask = np.ones(len(self.question_ids), bool) if questions is None else np.asarray(questions, bool)
        acc, spent, st = self.accuracy[..., mask], self.spent[..., mask], self.status[..., mask]
        covered = (~np.isnan(acc)).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(covered > 0, np.nansum(acc, -1) / covered, np.nan)
            spent_mean = np.where(covered > 0, np.nansum(np.where(np.isnan(acc), np.nan, spent), -1) / covered, np.nan)
            k_mean = np.where(
                covered > 0, np.nansum(np.where(np.isnan(acc), np.nan, self.samples[..., mask]), -1) / covered, np.nan
            )
            tok_mean = np.where(
                covered > 0, np.nansum(np.where(np.isnan(acc), np.nan, self.tokens[..., mask]), -1) / covered, np.nan
            )
        n_c, n_b = acc.shape[:2]
        frame = pd.DataFrame(
            {
                "configuration": np.repeat(self.configurations, n_b),
                "kind": np.repeat(self.kind, n_b),
                "strategy": np.repeat(self.strategy, n_b),
                "ratio": np.repeat(self.ratio, n_b),
                "budget_flops": np.tile(self.budgets, n_c),
                "budget_samples": np.tile(self.budget_samples, n_c),
                "accuracy": mean.ravel(),
                "questions": covered.ravel(),
                "of_questions": int(mask.sum()),
                "spent_flops": spent_mean.ravel(),
                "spent_fraction": (spent_mean / self.budgets[None, :]).ravel(),
                "samples": k_mean.ravel(),
                "tokens": tok_mean.ravel(),
            }
        )
        for code, name in enumerate(STATUSES):
            if code != OK:
                frame[name] = (st == code).sum(-1).ravel()
        return frame


# ---- configuration names ------------------------------------------------------------------------------------
def search_label(strategy: str, record: dict) -> str:
    """`beam_search[n=4,width=2] · self_verify`: the parameters that differ from the strategy's defaults (a sweep
    point shows its ratio instead of the chain split, which changes with the budget), then the verifier."""
    from backend.strategies import STRATEGIES

    known = STRATEGIES.get(strategy)
    defaults = {k: f.default for k, f in known.options.model_fields.items()} if known is not None else {}
    ratio = record.get("ratio")
    skip = set(RECORD_KEYS) | ({"chains", "chain_length"} if ratio else set())
    parts = [f"{k}={_short(v)}" for k, v in sorted(record.items()) if k not in skip and defaults.get(k, object()) != v]
    if ratio:
        parts.insert(0, f"seq:par={ratio}")
    verifier = record.get("verifier")
    label = f"{strategy}[{','.join(parts)}]" if parts else strategy
    return f"{label} · {verifier}" if verifier else label


def _short(v) -> str:
    return json.dumps(v) if isinstance(v, str) and (not v.strip() or v != v.strip()) else str(v)


def pool_rule(name: str) -> str:
    """The rule of a pool curve name: 'best_of_n[self_verify]' -> 'best_of_n'."""
    return name.split("[")[0]


# ---- searches -------------------------------------------------------------------------------------------------
SEARCH_SQL = """
SELECT strategy, config, run_id, question_id, coalesce(any_value(question_key), '~' || question_id) AS question_key,
       count(*) - 1 AS generated,
       sum(greatest(coalesce(prompt_tokens, 0) - coalesce(ledger_cached_tokens, cached_prompt_tokens, 0), 0)
           + coalesce(completion_tokens, 0)) AS tokens,
       sum(generator_flops + coalesce(verifier_flops, 0)) AS spent,
       bool_or(coalesce(selected, false)) AS answered,
       coalesce(bool_or(selected AND correct), false) AS solved
FROM nodes WHERE list_contains($runs, run_id) AND model = $model
GROUP BY strategy, config, run_id, question_id
"""
"""One row per tree: a question asked twice (two ids of one key, or two runs) gives two trees, which the table
averages like runs of several seeds, never adds up."""


def load_searches(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], model: str) -> pd.DataFrame:
    """One row per (configuration, budget, question) of the stored searches: label, strategy, ratio, budget,
    completions generated, FLOPs spent, whether it selected an answer and whether that answer is correct.
    Records are parsed once per distinct configuration, not per row."""
    rows = con.sql(SEARCH_SQL, params={"runs": list(run_ids), "model": model}).df()
    if rows.empty:
        return rows.assign(label=[], ratio=[], budget=[])
    keys = rows[["strategy", "config"]].drop_duplicates()
    parsed = []
    for strategy, config in keys.itertuples(index=False):
        record = json.loads(config)
        budget = record.get("budget_flops")
        parsed.append(
            (
                strategy,
                config,
                search_label(strategy, record),
                record.get("ratio") or "",
                np.nan if budget is None else float(budget),
            )
        )
    meta = pd.DataFrame(parsed, columns=["strategy", "config", "label", "ratio", "budget"])
    return rows.merge(meta, on=["strategy", "config"], how="left")


def merge_budgets(values, rtol: float = BUDGET_MERGE_RTOL) -> np.ndarray:
    """Distinct budgets, values within `rtol` of the previous kept one merged into it."""
    out: list[float] = []
    for v in np.sort(np.asarray(values, dtype=np.float64)):
        if not out or v > out[-1] * (1 + rtol):
            out.append(float(v))
    return np.asarray(out)


# ---- the pool -------------------------------------------------------------------------------------------------
def k_levels(n_max: int) -> np.ndarray:
    """The k a pool rule is evaluated at: every k up to EXACT_K, then K_PER_DOUBLING per doubling, up to n_max."""
    exact = np.arange(1, min(n_max, EXACT_K) + 1)
    if n_max <= EXACT_K:
        return exact
    steps = int(np.ceil(np.log2(n_max / EXACT_K) * K_PER_DOUBLING))
    geo = np.floor(EXACT_K * 2.0 ** (np.arange(1, steps + 1) / K_PER_DOUBLING)).astype(np.int64)
    return np.unique(np.concatenate([exact, geo[geo < n_max], [n_max]]))


def affordable_k(budgets, once, per_sample) -> np.ndarray:
    """(B, Q) the largest whole k with once + k · per_sample <= budget (ledger.samples_affordable)."""
    b = np.asarray(budgets, dtype=np.float64)[:, None]
    return samples_affordable(b, once[None, :], per_sample[None, :])


def _search_keys(pool: Pool) -> np.ndarray:
    """The pool's question keys as SEARCH_SQL spells them (a question without a key: '~' + its id)."""
    ids = np.asarray(pool.question_ids, dtype=object)
    if pool.question_keys is None:
        return np.asarray(["~" + str(q) for q in ids], dtype=object)
    keyless = np.asarray([str(k).startswith("~") for k in pool.question_keys], dtype=bool)
    return np.where(keyless, np.asarray(["~" + str(q) for q in ids], dtype=object), pool.question_keys)


def verifier_flops_per_question(con, run_ids: Sequence[str], model: str, verifier: str, pool: Pool) -> np.ndarray:
    """(Q,) mean verifier FLOPs per scored sample of each of the pool's questions (the ledger's charge for scoring
    one); a score finds its question through its sample (scores are keyed by run, id and sample index)."""
    df = con.sql(
        f"""SELECT {KEY_OR_LABEL_SQL} AS question_key, avg(coalesce(verifier_flops, 0)) AS f
           FROM scores c JOIN samples s USING (run_id, model, question_id, sample_idx)
           WHERE list_contains($runs, run_id) AND model = $model AND verifier = $verifier GROUP BY 1""",
        params={"runs": list(run_ids), "model": model, "verifier": verifier},
    ).df()
    per_question = df.set_index("question_key")["f"].astype(np.float64)
    return per_question.reindex(pd.Index(pool.keys, dtype=object)).fillna(0.0).to_numpy()


def old_rule_scores(con, run_ids: Sequence[str], model: str, verifier: str) -> int:
    """Charged score rows written before shard layout 9: priced by the engine's cache report, not the idealised prefix
    cache, and without the token counts to re-price them from (README, "What is stored")."""
    df = con.sql(
        """SELECT count(*) AS n FROM scores WHERE list_contains($runs, run_id) AND model = $model
           AND verifier = $verifier AND verifier_prompt_tokens IS NULL AND coalesce(verifier_flops, 0) > 0""",
        params={"runs": list(run_ids), "model": model, "verifier": verifier},
    ).df()
    return int(df["n"].iloc[0])


def default_budgets(once, per_sample, n_max: int, points: int = 6) -> np.ndarray:
    """A log-spaced FLOPs grid over what the pool can pay for: from the budget at which every question affords
    one sample to the one at which the average question has drawn the whole pool."""
    lo = float(np.max(once + per_sample))
    hi = float(np.mean(once + n_max * per_sample))
    return np.geomspace(lo, hi, points) if hi > lo * 1.01 else np.asarray([lo])


# ---- the table ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cells:
    """The rows of one source of configurations (the pool rules, or the searches), each (C, B, Q) but the names."""

    names: list[str]
    strategy: list[str]
    ratio: list[str]
    accuracy: np.ndarray
    spent: np.ndarray
    samples: np.ndarray
    tokens: np.ndarray
    status: np.ndarray


def strategy_table(
    pool: Pool,
    searches: pd.DataFrame | None = None,
    *,
    verifier: str | None = None,
    verifier_flops: np.ndarray | None = None,
    budgets=None,
    draws: int = 32,
    seed: int = 0,
    one_sample_flops: float | None = None,
    budget_unit: str = "flops",
    pool_rules: bool = True,
    confidence_rules: bool = True,
) -> StrategyTable:
    """Build the table from a loaded pool and `load_searches` rows (module docstring).

    budgets: FLOPs per question; default the distinct search budgets, or a grid over the pool without searches.
    verifier_flops: (Q,) mean verifier FLOPs per sample for `verifier` (charged to best-of-N and weighted).
    one_sample_flops: "1 sample" of these questions (backend.pricing, `pool_one_sample_flops`), the unit of the
    "≈ x samples" labels; None: the pool's mean measured sample, and a note says so. pool_rules=False: the searches'
    rows alone (the same cells; what a chart of the searches reads, without evaluating every pool rule);
    confidence_rules=False: without the confidence-aware rules (every other row the same), the costliest to evaluate
    at every budget, for a view that shows them only on demand."""
    searches = searches if searches is not None else pd.DataFrame(columns=["label", "budget"])
    notes: list[str] = []
    once, per_sample = question_costs(pool, "flops")
    capped = searches[searches["budget"].notna()] if len(searches) else searches
    if len(searches) and len(capped) < len(searches):
        n_unc = searches.loc[searches["budget"].isna(), "label"].nunique()
        notes.append(
            f"{n_unc} search configuration(s) ran without a budget; they have no place on a budget axis and are left out of the table"
        )
    if budgets is None:
        budgets = (
            merge_budgets(capped["budget"]) if len(capped) else default_budgets(once, per_sample, int(pool.n.min()))
        )
    budgets = np.asarray(budgets, dtype=np.float64)
    if budgets.ndim != 1 or budgets.size == 0 or np.any(budgets <= 0) or np.any(np.diff(budgets) <= 0):
        raise ValueError(f"budgets must be positive, strictly increasing FLOPs per question, got {budgets.tolist()}")
    per_verified = np.zeros(pool.n_questions)
    if verifier is not None and verifier_flops is not None:
        per_verified = np.nan_to_num(np.asarray(verifier_flops, dtype=np.float64))
    if pool_rules:
        rules = _pool_cells(pool, verifier, per_verified, budgets, draws, seed, confidence_rules)
    else:
        none = np.zeros((0, len(budgets), pool.n_questions))
        rules = _Cells([], [], [], none, none, none, none, none.astype(np.int8))
    found = _search_cells(pool, capped, budgets, notes)
    if one_sample_flops is None:
        one = float(np.mean(once + per_sample))
        notes.append("≈ samples: the pool's mean measured sample (no model architecture and max_tokens to price one)")
    else:
        one = float(one_sample_flops)
    return StrategyTable(
        configurations=rules.names + found.names,
        kind=np.asarray(["pool"] * len(rules.names) + ["search"] * len(found.names), dtype=object),
        strategy=np.asarray(rules.strategy + found.strategy, dtype=object),
        ratio=np.asarray(rules.ratio + found.ratio, dtype=object),
        budgets=budgets,
        question_ids=pool.question_ids,
        accuracy=np.concatenate([rules.accuracy, found.accuracy]),
        spent=np.concatenate([rules.spent, found.spent]),
        samples=np.concatenate([rules.samples, found.samples]),
        tokens=np.concatenate([rules.tokens, found.tokens]),
        status=np.concatenate([rules.status, found.status]),
        one_sample_flops=one,
        notes=tuple(notes),
        budget_unit=budget_unit,
    )


def _pool_cells(
    pool: Pool,
    verifier: str | None,
    per_verified: np.ndarray,
    budgets: np.ndarray,
    draws: int,
    seed: int,
    confidence_rules: bool = True,
) -> _Cells:
    """Pool rules: k per (rule, budget, question), curves evaluated on the k levels actually needed."""
    once, per_sample = question_costs(pool, "flops")
    prompt_tokens, completion_tokens = question_costs(pool, "tokens")
    n_min = int(pool.n.min())
    n_q, n_b = pool.n_questions, len(budgets)
    with_verifier = verifier is not None
    # confidence-aware rules read the samples' own logprobs: a sample's cost, no verifier
    own = available_rules(pool) if confidence_rules else []
    names = ["majority", *own] + (
        [f"best_of_n[{verifier}]", f"weighted_best_of_n[{verifier}]"] if with_verifier else []
    )
    cost_per = [per_sample] * (1 + len(own)) + ([per_sample + per_verified] * 2 if with_verifier else [])
    affordable = np.stack([affordable_k(budgets, once, c) for c in cost_per])  # (R, B, Q)
    ks = np.minimum(affordable, n_min)
    levels = k_levels(n_min)
    on_grid = levels[np.maximum(np.searchsorted(levels, ks, side="right") - 1, 0)]
    on_grid = np.where(ks > 0, on_grid, 0)
    needed = np.unique(on_grid[on_grid > 0])
    pool_acc = np.full((len(names), n_b, n_q), np.nan)
    if needed.size:
        curves = selection_curves(
            pool, verifier, needed, draws=draws, seed=seed, n_boot=0, confidence_rules=confidence_rules
        )
        col = np.searchsorted(needed, np.maximum(on_grid, needed[0]))
        for r, name in enumerate(names):
            per_q = curves[name].per_question  # (Q, K)
            pool_acc[r] = np.where(on_grid[r] > 0, per_q[np.arange(n_q)[None, :], col[r]], np.nan)
    pool_spent = np.where(on_grid > 0, once[None, None, :] + on_grid * np.stack(cost_per)[:, None, :], np.nan)
    # a budget that would buy more than the pool holds: the whole pool, flagged
    pool_status = np.where(affordable > n_min, POOL_EXHAUSTED, np.where(on_grid == 0, UNAFFORDABLE, OK)).astype(np.int8)
    tokens = np.where(on_grid > 0, prompt_tokens[None, None, :] + on_grid * completion_tokens[None, None, :], np.nan)
    return _Cells(
        names,
        [pool_rule(n) for n in names],
        [""] * len(names),
        pool_acc,
        pool_spent,
        on_grid.astype(np.float64),
        tokens,
        pool_status,
    )


def _search_cells(pool: Pool, capped: pd.DataFrame, budgets: np.ndarray, notes: list[str]) -> _Cells:
    """Searches: one configuration per label, its runs placed at what they spent (module docstring); what is left out
    is said in `notes`."""
    n_q, n_b = pool.n_questions, len(budgets)
    labels = sorted(capped["label"].unique()) if len(capped) else []
    empty = np.full((len(labels), n_b, n_q), np.nan)
    if not labels:
        return _Cells(
            [], [], [], empty, empty.copy(), empty.copy(), empty.copy(), np.full(empty.shape, NOT_RUN, np.int8)
        )
    rows, q, c, b = _search_rows_on_grid(pool, capped, labels, budgets, notes)
    bud = rows["budget"].to_numpy(dtype=np.float64)
    generated = rows["generated"].to_numpy(dtype=np.float64)
    spent = rows["spent"].to_numpy(dtype=np.float64)
    solved = rows["solved"].to_numpy(dtype=np.float64)
    over_row = spent > bud * (1 + OVER_BUDGET_RTOL)  # broke its own ledger: never a candidate anywhere
    ran = (generated > 0) & ~over_row
    # each (configuration, cap, question): the mean over its runs (seeds) that kept to their cap
    flat = (c * n_b + b) * n_q + q
    size = len(labels) * n_b * n_q
    shape = (len(labels), n_b, n_q)
    cnt = np.bincount(flat[ran], minlength=size)
    seen = np.bincount(flat, minlength=size).reshape(shape) > 0
    over = np.bincount(flat[over_row], minlength=size).reshape(shape) > 0
    with np.errstate(invalid="ignore", divide="ignore"):

        def mean(values):
            return (np.bincount(flat[ran], weights=values[ran], minlength=size) / cnt).reshape(shape)

        g_acc, g_spent, g_gen = mean(solved), mean(spent), mean(generated)
        g_tok = mean(rows["tokens"].to_numpy(dtype=np.float64))
    g_ok = cnt.reshape(shape) > 0
    # placed at measured spend: at budget j a question's cell is the configuration's run (the largest cap among
    # its runs on that question) whose ledger spent at most budgets[j], as a pool rule's k is chosen per question
    fits = g_ok[..., None] & (g_spent[..., None] <= budgets[None, None, None, :] * (1 + OVER_BUDGET_RTOL))
    any_fit = fits.any(axis=1)  # (C, Q, B)
    pick = n_b - 1 - np.argmax(fits[:, ::-1], axis=1)  # (C, Q, B): the largest fitting cap
    ci, qi = np.meshgrid(np.arange(len(labels)), np.arange(n_q), indexing="ij")
    at = (ci[..., None], pick, qi[..., None])  # indexes (C, Q, B)

    def placed(values):
        return np.where(any_fit, values[at], np.nan).transpose(0, 2, 1)  # (C, B, Q)

    s_acc, s_spent, s_gen, s_tok = placed(g_acc), placed(g_spent), placed(g_gen), placed(g_tok)
    budget_cells = budgets[None, :, None]
    covered = any_fit.transpose(0, 2, 1)
    status = np.where(covered, OK, NOT_RUN)
    status = np.where(covered & (s_spent < STOPPED_EARLY_FRACTION * budget_cells), STOPPED_EARLY, status)
    status = np.where(~covered & seen & ~g_ok, UNAFFORDABLE, status)
    status = np.where(~covered & over, OVER_BUDGET, status)
    meta = capped.drop_duplicates("label").set_index("label")
    n_over = int(over.sum())
    if n_over:
        notes.append(
            f"{n_over} search cell(s) spent more than their budget and are never a candidate (status over_budget; "
            "the ledger is a hard limit: a store from an older version?)"
        )
    return _Cells(
        labels,
        [meta.at[lb, "strategy"] for lb in labels],
        [meta.at[lb, "ratio"] for lb in labels],
        s_acc,
        s_spent,
        s_gen,
        s_tok,
        status.astype(np.int8),
    )


def _search_rows_on_grid(
    pool: Pool, capped: pd.DataFrame, labels: list[str], budgets: np.ndarray, notes: list[str]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The search rows that land in the table, with their question, configuration and budget indexes; rows of a
    question outside the pool or of a budget off the grid are left out, and `notes` says so."""
    n_b = len(budgets)
    qpos = pd.Series(np.arange(pool.n_questions), index=pd.Index(_search_keys(pool), dtype=object))
    qpos = qpos[~qpos.index.duplicated()]  # a keyless id in two datasets of a pool: its searches go to the first
    q = qpos.reindex(capped["question_key"].astype(object)).to_numpy()  # a search finds its question by key
    outside = np.isnan(q)
    if outside.any():
        notes.append(
            f"{capped.loc[outside, 'question_id'].nunique()} searched question(s) are not in the pool and are left out"
        )
    rows = capped[~outside]
    q = q[~outside].astype(np.int64)
    c = np.searchsorted(labels, rows["label"].to_numpy())
    bud = rows["budget"].to_numpy(dtype=np.float64)
    b = np.searchsorted(budgets * (1 + BUDGET_MERGE_RTOL), bud)
    on = (b < n_b) & (
        np.abs(bud - budgets[np.minimum(b, n_b - 1)]) <= budgets[np.minimum(b, n_b - 1)] * BUDGET_MERGE_RTOL
    )
    if (~on).any():
        notes.append(
            f"{rows.loc[~on, 'label'].nunique()} search configuration(s) ran at budgets outside the chosen grid and are left out there"
        )
    return rows[on], q[on], c[on], b[on]
