"""Verifier quality against the oracle grader, and the ceiling an imperfect verifier puts on resampling
(Stroebl et al. 2024, "Inference Scaling fLaws").

A verifier accepts a sample when its score >= threshold. Its false-positive rate is P(accept | wrong).
Resampling until the verifier accepts converges, as N grows, to the chance that an accepted sample is
correct. Per question, from the pool: ceiling_q = #(accepted ∧ correct) / #accepted (0 if nothing is ever
accepted). With the verifier's overall rates (TPR t, FPR f) and a question's pass@1 p, the fLaws model gives
ceiling_q = p·t / (p·t + (1−p)·f). Either way, a question the model rarely solves has a low ceiling when
f > 0: coverage climbs to 1 while verifier-based best-of-N flattens below it.

AUROC, threshold-free: the chance that a correct sample scores above a wrong one (ties count half), over every
scored sample; 0.5 is a coin, below 0.5 the verifier prefers wrong answers and selecting by it loses to chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from backend.metrics.curve import check_questions_mask
from backend.metrics.pools import Pool


@dataclass(frozen=True)
class VerifierQuality:
    verifier: str
    threshold: float
    false_positive_rate: float  # P(score >= threshold | wrong)
    true_positive_rate: float  # P(score >= threshold | correct)
    precision: float  # P(correct | accepted)
    ceiling: float  # mean over questions of #(accepted ∧ correct) / #accepted
    ceiling_from_rates: float  # mean over questions of p·t / (p·t + (1−p)·f)
    per_question_ceiling: np.ndarray
    scored_samples: int
    auroc: float  # P(score of a correct sample > score of a wrong one), ties half; nan without both kinds


def auroc(scores, correct) -> float:
    """Mann–Whitney AUROC of `scores` for telling `correct` from wrong samples (ties count half); nan when either
    kind is missing. Vectorised: one ranking of all samples."""
    scores, correct = np.asarray(scores, np.float64).ravel(), np.asarray(correct, bool).ravel()
    n_pos, n_neg = int(correct.sum()), int((~correct).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: a tie between a correct and a wrong sample counts half
    return float((ranks[correct].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ratio(num, den, empty=np.nan):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.full(np.broadcast_shapes(num.shape, den.shape), empty), where=den > 0)


def verifier_quality(pool: Pool, verifier: str, threshold: float = 0.5, *, questions=None) -> VerifierQuality:
    """False-positive rate vs the oracle and the best-of-N accuracy ceiling it implies (module docstring).
    Samples the verifier did not score are left out."""
    mask = check_questions_mask(questions, pool.n_questions)
    score = pool.score(verifier)[mask]
    scored = pool.valid[mask] & ~np.isnan(score)
    if not scored.any():
        raise ValueError(f"verifier {verifier!r} scored no sample of the selected questions")
    correct = pool.correct[mask] & scored
    wrong = scored & ~pool.correct[mask]
    accept = scored & (np.nan_to_num(score, nan=-np.inf) >= threshold)
    fpr = float(_ratio((accept & wrong).sum(), wrong.sum()))
    tpr = float(_ratio((accept & correct).sum(), correct.sum()))
    precision = float(_ratio((accept & correct).sum(), accept.sum()))
    per_q = _ratio((accept & correct).sum(axis=1), accept.sum(axis=1), empty=0.0)
    p = _ratio(correct.sum(axis=1), scored.sum(axis=1), empty=0.0)
    t, f = np.nan_to_num(tpr), np.nan_to_num(fpr)
    from_rates = _ratio(p * t, p * t + (1.0 - p) * f, empty=0.0)
    return VerifierQuality(
        verifier,
        float(threshold),
        fpr,
        tpr,
        precision,
        float(per_q.mean()),
        float(from_rates.mean()),
        per_q,
        int(scored.sum()),
        auroc(score[scored], correct[scored]),
    )


def verifier_quality_table(pool: Pool, threshold: float | dict = 0.5, *, questions=None) -> pd.DataFrame:
    """One row per verifier in the pool; threshold is one number or {verifier: threshold}."""
    rows = []
    for name in sorted(pool.scores):
        t = threshold.get(name, 0.5) if isinstance(threshold, dict) else threshold
        q = verifier_quality(pool, name, t, questions=questions)
        rows.append(
            dict(
                verifier=name,
                threshold=t,
                false_positive_rate=q.false_positive_rate,
                true_positive_rate=q.true_positive_rate,
                precision=q.precision,
                ceiling=q.ceiling,
                ceiling_from_rates=q.ceiling_from_rates,
                auroc=q.auroc,
                scored_samples=q.scored_samples,
            )
        )
    return pd.DataFrame(rows)
