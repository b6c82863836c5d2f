"""Cost-of-pass (Erol et al. 2025): the expected money spent to get one correct answer.

    v(m, p) = C_m(p) / R_m(p),   C = n_in · price_in + n_out · price_out,   R = success rate
A model that never succeeds has v = inf: shown as infinite, never a crash or a division warning.
The frontier V_p(M) = min_m v(m, p) is the cheapest way to a correct answer with the models in M; a human
expert is one more candidate with v ≈ C_expert. A new model's gain is V_p(M) − V_p(M ∪ {m}); the
counterfactual frontier drops a whole model class (say, every reasoning model) to show what it contributes.
Rows are (model, strategy, budget) attempts, so inference strategies compete with models on one frontier.

Billing k samples of one question (one rule, `curve_cost_rows`): k requests, k · completion tokens out; the
prompt's tokens are billed in full once and at the cached-input price for the other k − 1 requests, the price
providers charge for a prompt prefix they have cached (`Price.cached_input_per_million`; where a provider bills no
such price it equals the input price). This is the idealised prefix cache the FLOPs ledger charges
(backend.pricing); the engine's own cache report changes neither the bill nor the FLOPs. Each row also carries
its FLOPs by the ledger (prefill once + k decodes), so dollars and compute describe the same attempt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.errors import SpecError
from backend.metrics.curve import Curve
from backend.metrics.pools import Pool

HUMAN_EXPERT = "human expert"
_REQUIRED = ("model", "strategy", "budget", "input_tokens", "output_tokens", "success_rate")


@dataclass(frozen=True)
class Price:
    """User prices in money per 1M tokens; cached input (a prompt prefix the provider has cached) defaults to the
    input price: no discount."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None

    def __post_init__(self):
        for p in (self.input_per_million, self.output_per_million, self.cached_input):
            if not (math.isfinite(p) and p >= 0):  # NaN compares false both ways: test what is allowed
                raise ValueError(f"prices must be finite and >= 0 per million tokens, got {p!r}")

    @property
    def cached_input(self) -> float:
        return self.input_per_million if self.cached_input_per_million is None else self.cached_input_per_million


def read_price(value: object, field: str) -> float:
    """One price as a user typed it (a cell of the Cost-of-pass page's table): a blank, text, a negative or an
    infinite number is a SpecError naming `field`, never a TypeError or a NaN cost further on."""
    allowed = "a finite number >= 0 (USD per 1M tokens)"
    if (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    ):
        raise SpecError(field, "is blank", allowed)
    if isinstance(value, bool):
        raise SpecError(field, f"{value!r} is not a price", allowed)
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SpecError(field, f"{value!r} is not a number", allowed) from None
    if not (math.isfinite(price) and price >= 0):
        raise SpecError(field, f"{price!r} is not allowed", allowed)
    return price


def attempt_cost(input_tokens, output_tokens, price: Price) -> np.ndarray:
    """C = n_in · price_in + n_out · price_out (prices per 1M tokens)."""
    return (
        np.asarray(input_tokens, dtype=np.float64) * price.input_per_million
        + np.asarray(output_tokens, dtype=np.float64) * price.output_per_million
    ) / 1e6


def cost_of_pass(cost, success_rate) -> np.ndarray:
    """v = C / R, inf where R = 0 (the attempt never passes), without a division warning."""
    cost = np.asarray(cost, dtype=np.float64)
    rate = np.asarray(success_rate, dtype=np.float64)
    if np.any((rate < 0) | (rate > 1)):
        raise ValueError("success_rate must lie in [0, 1]")
    if np.any(cost < 0):
        raise ValueError("cost must be >= 0")
    out = np.full(np.broadcast_shapes(cost.shape, rate.shape), np.inf)
    np.divide(cost, rate, out=out, where=rate > 0)
    return out


def cost_table(rows: pd.DataFrame, prices: Mapping[str, Price]) -> pd.DataFrame:
    """Add `cost` (per attempt) and `cost_of_pass` to rows of (model, strategy, budget, input_tokens,
    output_tokens, success_rate[, cached_input_tokens, task]); tokens are per attempt at that budget, input_tokens
    billed at the input price, cached_input_tokens (0 when absent) at the cached-input price."""
    missing = [c for c in _REQUIRED if c not in rows.columns]
    if missing:
        raise ValueError(f"cost rows lack column(s) {', '.join(missing)}; required: {', '.join(_REQUIRED)}")
    unpriced = sorted(set(rows["model"]) - set(prices))
    if unpriced:
        raise ValueError(f"no price for model(s) {', '.join(unpriced)}; priced: {', '.join(sorted(prices))}")
    out = rows.copy()
    p_in = out["model"].map(lambda m: prices[m].input_per_million).to_numpy(np.float64)
    p_out = out["model"].map(lambda m: prices[m].output_per_million).to_numpy(np.float64)
    p_cached = out["model"].map(lambda m: prices[m].cached_input).to_numpy(np.float64)
    cached = out["cached_input_tokens"].to_numpy(np.float64) if "cached_input_tokens" in out else 0.0
    out["cost"] = (
        out["input_tokens"].to_numpy(np.float64) * p_in
        + cached * p_cached
        + out["output_tokens"].to_numpy(np.float64) * p_out
    ) / 1e6
    out["cost_of_pass"] = cost_of_pass(out["cost"].to_numpy(), out["success_rate"].to_numpy())
    return out


def curve_cost_rows(model: str, strategy: str, curve: Curve, pool: Pool) -> pd.DataFrame:
    """Cost rows from a pool curve (module docstring's billing rule): at budget k, an attempt bills the mean prompt
    once in full and k − 1 times as cached input, k · the mean completion out, and succeeds at the curve's mean;
    `flops` is the ledger's price of the same k samples (mean over the questions of one prefill + k decodes)."""
    from backend.metrics.budget import question_costs

    keep = np.isin(pool.question_ids, curve.question_ids)
    valid = pool.valid[keep]
    n = valid.sum()
    prompt = np.where(valid, pool.prompt_tokens[keep], 0.0).sum() / n
    out_tokens = np.where(valid, pool.completion_tokens[keep], 0.0).sum() / n
    k = np.asarray(curve.k, dtype=np.float64)
    try:
        once, per_sample = question_costs(pool, "flops", questions=keep)
        flops = (once[:, None] + k[None, :] * per_sample[:, None]).mean(axis=0)
    except ValueError:  # no stored FLOPs (a hand-built pool): the bill stands without them
        flops = np.full(k.shape, np.nan)
    return pd.DataFrame(
        dict(
            model=model,
            strategy=strategy,
            budget=curve.k,
            input_tokens=np.where(k > 0, prompt, 0.0),
            cached_input_tokens=np.maximum(k - 1, 0) * prompt,
            output_tokens=k * out_tokens,
            success_rate=np.clip(curve.mean, 0.0, 1.0),
            flops=flops,
        )
    )


def _by(table: pd.DataFrame, by: Sequence[str]) -> list[str]:
    by = [c for c in by]
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ValueError(f"group column(s) {', '.join(missing)} not in the cost table")
    return by


def frontier(
    table: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    exclude_models: Sequence[str] = (),
    human_expert_cost: float | None = None,
) -> pd.DataFrame:
    """V_p(M) = min over rows of cost_of_pass, per group `by` (e.g. ("task",)); the argmin row's model,
    strategy and budget name how. With human_expert_cost, the expert (v = C_expert) competes too.
    A group where nothing ever passes has frontier inf and model None."""
    by = _by(table, by)
    rows = table[~table["model"].isin(list(exclude_models))]
    if human_expert_cost is not None:
        if human_expert_cost < 0:
            raise ValueError("human_expert_cost must be >= 0")
        groups = table[by].drop_duplicates() if by else pd.DataFrame(index=[0])
        expert = groups.assign(
            model=HUMAN_EXPERT,
            strategy="expert",
            budget=1,
            cost=float(human_expert_cost),
            success_rate=1.0,
            cost_of_pass=float(human_expert_cost),
        )
        rows = pd.concat([rows, expert], ignore_index=True)
    how = [c for c in ("model", "strategy", "budget") if c not in by]  # grouping by budget keeps it once
    cols = [*by, "frontier_cost", *how]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.assign(_finite=np.isfinite(rows["cost_of_pass"].to_numpy(np.float64)))
    order = rows.sort_values([*by, "cost_of_pass"], kind="stable")
    best = order.groupby(by, sort=True).head(1) if by else order.head(1)
    best = best.assign(frontier_cost=best["cost_of_pass"].astype(np.float64))
    never = ~best["_finite"].to_numpy()
    for col in how:  # one entry per group, not per sample
        best[col] = pd.Series([None if nv else v for v, nv in zip(best[col], never)], index=best.index, dtype=object)
    return best[cols].reset_index(drop=True)


def model_gain(table: pd.DataFrame, model: str, *, by: Sequence[str] = (), **frontier_kw) -> pd.DataFrame:
    """Gain of adding `model`: V_p(M) − V_p(M ∪ {model}) with M = the other models; inf when only it passes,
    0 when neither passes."""
    if model not in set(table["model"]):
        raise ValueError(f"model {model!r} is not in the cost table; allowed: {', '.join(sorted(set(table['model'])))}")
    by = _by(table, by)
    without = frontier(table, by=by, exclude_models=[model], **frontier_kw)
    with_m = frontier(table, by=by, **frontier_kw)
    if by:
        merged = with_m[[*by, "frontier_cost"]].merge(
            without[[*by, "frontier_cost"]], on=by, how="left", suffixes=("_with", "_without")
        )
    else:
        merged = pd.DataFrame(
            dict(
                frontier_cost_with=with_m["frontier_cost"].to_numpy(),
                frontier_cost_without=without["frontier_cost"].to_numpy() if len(without) else [np.inf],
            )
        )
    before = merged["frontier_cost_without"].fillna(np.inf).to_numpy(np.float64)
    after = merged["frontier_cost_with"].to_numpy(np.float64)
    both_inf = np.isinf(before) & np.isinf(after)
    gain = np.zeros_like(before)
    np.subtract(before, after, out=gain, where=~both_inf)
    return merged.assign(gain=gain)


def counterfactual_frontier(
    table: pd.DataFrame,
    model_classes: Mapping[str, str],
    remove_class: str,
    *,
    by: Sequence[str] = (),
    **frontier_kw,
) -> pd.DataFrame:
    """The frontier without every model of one class (model_classes maps model -> class name)."""
    unknown = sorted(set(table["model"]) - set(model_classes))
    if unknown:
        raise ValueError(f"model_classes lacks model(s) {', '.join(unknown)}")
    if remove_class not in set(model_classes.values()):
        raise ValueError(
            f"remove_class {remove_class!r} is unknown; allowed: {', '.join(sorted(set(model_classes.values())))}"
        )
    removed = [m for m, cls in model_classes.items() if cls == remove_class]
    return frontier(table, by=by, exclude_models=removed, **frontier_kw)
