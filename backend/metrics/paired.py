"""Is the difference between two configurations real, or noise? Paired statistics on the same questions at
matched compute.

Two configurations scored on the same questions are paired: a hard question is hard for both, so their outcomes
are correlated and comparing two independent means would overstate the noise. The statistic is the mean of the
per-question differences d = A − B, and one test of that one statistic gives both the verdict's direction and its
significance ("A better" only where d̄ > 0 and the test rejects):

- **0/1 outcomes** (a search's selected answer): McNemar's exact test. Under "no difference" a question where A
  beats B is as likely as one where B beats A, so the smaller of the two counts is Binomial(their sum, 1/2); the
  two-sided p-value doubles its tail.
- **expected accuracies** (a pool rule's mean over random k-subsets, anywhere in [0, 1]): the paired sign-flip
  permutation test of the mean difference (Fisher's randomisation test). Under "no difference" the labels A and B
  of each question are exchangeable, so every difference is as likely to carry either sign; the p-value is the
  share of the 2^m sign patterns of the m non-zero differences whose |Σ ± d| is at least the observed |Σ d|:
  enumerated exactly up to `EXACT_MAX` of them, else estimated from `N_PERM` random patterns as
  (1 + hits) / (1 + N_PERM), a valid p-value. On 0/1 differences this test *is* McNemar's exact test, and unlike
  the sign test it weighs magnitudes: nine questions won by 0.01 do not outweigh one lost by 0.9.

Beside the test:
- **the accuracy difference with a paired bootstrap confidence interval**: questions are resampled with
  replacement, each keeping its pair of outcomes, and the interval is the percentile interval of the resampled
  mean differences;
- **roughly how many questions would tell them apart**: the normal approximation of both tests, whose null
  distributions have the same spread: under "no difference" Σ d has variance Σ d² (the sign-flip test's
  permutation variance; on 0/1 outcomes the discordant count, as in McNemar's test), while under the observed
  difference it is spread by σ_d around n·d̄. So n = ((z₁₋α/₂ · √mean(d²) + z_power · σ_d) / |d̄|)² (for McNemar's
  test Connor 1987, "Sample size for testing differences in proportions for the paired-sample design", Biometrics
  43:207-211) — a planning figure, not a promise (tests/unit/test_planning.py checks it against a simulated power
  of the exact tests).

All of it is vectorised over the questions (bootstrap resamples and sign patterns in chunks of one matrix each)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

ALPHA = 0.05
POWER = 0.8
N_BOOT = 10_000
N_PERM = 10_000
EXACT_MAX = 16
"""Non-zero differences up to which the sign-flip test enumerates all 2^m sign patterns (65,536 at most)."""
TIE_RTOL = 1e-11
"""A sign pattern's |sum| counts as the observed one's when within TIE_RTOL · Σ|d| of it (summation order)."""
_CHUNK = 2_000  # bootstrap resamples or sign patterns per matrix: (2,000 × questions) at most at once
MCNEMAR = "McNemar exact"
SIGN_FLIP_EXACT = "sign-flip exact"
SIGN_FLIP_MC = "sign-flip Monte Carlo"


def mcnemar_exact(a_better: int, b_better: int) -> float:
    """Two-sided exact p-value (exact integer arithmetic) of a_better vs b_better discordant questions."""
    if a_better < 0 or b_better < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_better} and {b_better}")
    n = a_better + b_better
    if n == 0:
        return 1.0
    k = min(a_better, b_better)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def sign_flip_test(differences, n_perm: int = N_PERM, seed: int = 0) -> tuple[float, bool]:
    """Two-sided p-value of the paired sign-flip permutation test of the mean difference, and whether it is exact.

    Zero differences carry no sign and are left out. With m <= EXACT_MAX non-zero ones every sign pattern is
    enumerated; beyond, `n_perm` random patterns (seeded) give (1 + hits) / (1 + n_perm). A pattern is as extreme
    as the observed one when its |sum| is at least the observed |sum| (to TIE_RTOL)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"differences must be a 1-d array, got shape {d.shape}")
    d = d[d != 0]
    m = d.size
    if m == 0:
        return 1.0, True
    observed = abs(float(d.sum())) - TIE_RTOL * float(np.abs(d).sum())
    if m <= EXACT_MAX:
        signs = 1.0 - 2.0 * ((np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1)
        return float(np.mean(np.abs(signs @ d) >= observed)), True
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    rng = np.random.default_rng(seed)
    hits = 0
    for s in range(0, n_perm, _CHUNK):
        signs = rng.integers(0, 2, size=(min(_CHUNK, n_perm - s), m)) * 2.0 - 1.0
        hits += int((np.abs(signs @ d) >= observed).sum())
    return (1 + hits) / (1 + n_perm), False


def bootstrap_ci(
    differences: np.ndarray, alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval (1 - alpha) of the mean of `differences` over questions resampled with replacement."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"differences must be a non-empty 1-d array, got shape {d.shape}")
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            d[rng.integers(0, d.size, size=(min(_CHUNK, n_boot - s), d.size))].mean(axis=1)
            for s in range(0, n_boot, _CHUNK)
        ]
    )
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def questions_needed(differences: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Questions a paired comparison needs to detect the observed mean difference at `alpha` with `power` (the
    tests' normal approximation, module docstring: the null spread √mean(d²), the alternative's σ_d; never fewer
    than the exact tests need to reach `alpha` at all: n differences all one way give p = 2 / 2^n). None: no
    difference observed."""
    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean()) if d.size else 0.0
    if d.size == 0 or mean == 0.0:
        return None
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    null_sd = math.sqrt(float(np.mean(d**2)))
    spread = norm.ppf(1 - alpha / 2) * null_sd + norm.ppf(power) * sd
    fewest = math.ceil(math.log2(2 / alpha))
    return max(fewest, math.ceil((spread / abs(mean)) ** 2))


@dataclass(frozen=True)
class PairedDifference:
    """A against B on the questions both ran."""

    questions: int
    accuracy_a: float
    accuracy_b: float
    difference: float  # accuracy_a - accuracy_b
    ci_low: float
    ci_high: float
    a_better: int  # questions where A's accuracy is higher
    b_better: int
    p_value: float  # of `test`, on the mean difference
    questions_needed: int | None  # to tell them apart at this difference (None: no difference observed)
    alpha: float = ALPHA
    test: str = MCNEMAR  # MCNEMAR on 0/1 outcomes, else SIGN_FLIP_EXACT or SIGN_FLIP_MC ("none": no question)

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def more_questions(self) -> int | None:
        """How many questions beyond these a comparison would roughly need (0: enough already)."""
        return None if self.questions_needed is None else max(0, self.questions_needed - self.questions)

    def verdict(self) -> str:
        if self.questions == 0:
            return "no question ran under both"
        if self.significant and self.difference != 0:  # the test of the mean rejected: its sign is the direction
            return f"{'A' if self.difference > 0 else 'B'} better (p = {self.p_value:.2g})"
        if self.more_questions is None:
            return f"no difference (p = {self.p_value:.2g})"
        more = f"≈ {self.more_questions} more questions to tell apart" if self.more_questions else "a close call"
        return f"not significant (p = {self.p_value:.2g}); {more}"


def paired_difference(
    a, b, alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = 0, power: float = POWER, n_perm: int = N_PERM
) -> PairedDifference:
    """Compare per-question accuracies `a` and `b` (same questions, same order; NaN where a configuration did not
    run): only questions both ran count. McNemar's exact test when every outcome is 0 or 1, else the sign-flip test
    of the mean difference (module docstring)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-d arrays over the same questions, got shapes {a.shape} and {b.shape}")
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    if a.size == 0:
        nan = float("nan")
        return PairedDifference(0, nan, nan, nan, nan, nan, 0, 0, 1.0, None, alpha, "none")
    d = a - b
    low, high = bootstrap_ci(d, alpha, n_boot, seed)
    a_better, b_better = int((d > 0).sum()), int((d < 0).sum())
    if np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all():
        p, test = mcnemar_exact(a_better, b_better), MCNEMAR
    else:
        p, exact = sign_flip_test(d, n_perm, seed)
        test = SIGN_FLIP_EXACT if exact else SIGN_FLIP_MC
    return PairedDifference(
        questions=int(a.size),
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        difference=float(d.mean()),
        ci_low=low,
        ci_high=high,
        a_better=a_better,
        b_better=b_better,
        p_value=p,
        questions_needed=questions_needed(d, alpha, power),
        alpha=alpha,
        test=test,
    )


def difference_row(r: PairedDifference) -> dict:
    """The comparison as table columns (a page's or the CLI's row)."""
    return dict(
        questions_paired=r.questions,
        difference=r.difference,
        ci_low=r.ci_low,
        ci_high=r.ci_high,
        a_better=r.a_better,
        b_better=r.b_better,
        p_value=r.p_value,
        test=r.test,
        significant=r.significant,
        more_questions=r.more_questions,
        verdict=r.verdict(),
    )


def compare_at_budgets(
    a: str, accuracy_a, b: str, accuracy_b, budgets, budget_samples, questions=None, seed: int = 0
) -> pd.DataFrame:
    """`a` against `b` at every budget: accuracy_a and accuracy_b are (B, Q) per-question accuracies at the same
    FLOP budgets (matched compute), NaN where a configuration did not run; `questions` is an optional boolean mask
    over Q (a difficulty bin). One row per budget."""
    acc_a, acc_b = np.asarray(accuracy_a, dtype=np.float64), np.asarray(accuracy_b, dtype=np.float64)
    mask = np.ones(acc_a.shape[1], dtype=bool) if questions is None else np.asarray(questions, dtype=bool)
    rows = []
    for bi, budget in enumerate(budgets):
        r = paired_difference(acc_a[bi][mask], acc_b[bi][mask], seed=seed)
        rows.append(
            dict(
                a=a,
                b=b,
                budget_flops=float(budget),
                budget_samples=float(budget_samples[bi]),
                accuracy_a=r.accuracy_a,
                accuracy_b=r.accuracy_b,
                **difference_row(r),
            )
        )
    return pd.DataFrame(rows)


def compare_configurations(table, a: str, b: str, questions=None, seed: int = 0) -> pd.DataFrame:
    """Configuration `a` against `b` of a StrategyTable at every budget (each cell is what its configuration
    reaches at that FLOP budget), on the questions both ran there (`questions`: a mask, e.g. a difficulty bin)."""
    return compare_at_budgets(
        a,
        table.accuracy[table.index(a)],
        b,
        table.accuracy[table.index(b)],
        table.budgets,
        table.budget_samples,
        questions,
        seed,
    )
