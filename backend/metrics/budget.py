"""Budgets in samples, tokens or FLOPs, converted through the one FLOPs ledger (backend/ledger.py).

A pool curve is indexed by k, samples per question. The same curve can be drawn against generated tokens or
forward FLOPs: k samples of one prompt cost one prefill (the prefix is cached) plus k decodes, so
    tokens(k) = mean_q [prompt_q + k · mean completion_q]
    FLOPs(k)  = mean_q [prefill_q + k · mean decode_q]
with each question's own lengths. A verifier, when it reads every sample, adds its own prefill per sample.
"""

from __future__ import annotations

import numpy as np

from backend.ledger import ModelArch, decode_flops, prefill_flops, samples_affordable, sampling_flops
from backend.metrics.curve import check_questions_mask
from backend.metrics.pools import Pool

X_UNITS = ("samples", "tokens", "flops")


def flops_for_samples(
    arch: ModelArch,
    n_samples,
    prompt_tokens: float,
    completion_tokens: float,
    *,
    verifier: ModelArch | None = None,
) -> np.ndarray:
    """FLOPs of n samples of one prompt: prefill once + n · decode (ledger.sampling_flops), plus, with a
    verifier, n · the verifier's prefill of prompt + completion."""
    n = np.asarray(n_samples, dtype=np.float64)
    if np.any(n < 0):
        raise ValueError("n_samples must be >= 0")
    out = sampling_flops(arch, prompt_tokens, completion_tokens, n)
    if verifier is not None:
        out = out + n * prefill_flops(verifier, prompt_tokens + completion_tokens)
    return out


def samples_for_flops(
    arch: ModelArch,
    budget_flops,
    prompt_tokens: float,
    completion_tokens: float,
    *,
    verifier: ModelArch | None = None,
) -> np.ndarray:
    """Whole samples a FLOP budget buys (ledger.samples_affordable), each with a verifier pass when `verifier` is
    given. Inverse of `flops_for_samples`."""
    if np.any(np.asarray(budget_flops, dtype=np.float64) < 0):
        raise ValueError("budget_flops must be >= 0")
    per_sample = float(decode_flops(arch, prompt_tokens, completion_tokens))
    if verifier is not None:
        per_sample += float(prefill_flops(verifier, prompt_tokens + completion_tokens))
    return samples_affordable(budget_flops, prefill_flops(arch, prompt_tokens), per_sample)


def question_costs(
    pool: Pool, unit: str, *, questions=None, arch: ModelArch | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(once, per_sample) per question in `unit` ("tokens" or "flops"): what a question's k samples pay once (its
    prompt; the uncached prefill, the largest stored) and per sample (mean completion; mean decode), so k samples
    cost once + k · per_sample. FLOPs come from the stored prefill/decode columns; where those are missing, pass
    the model's `arch` and the ledger recomputes them from the token columns."""
    mask = check_questions_mask(questions, pool.n_questions)
    valid = pool.valid[mask]
    n = valid.sum(axis=1)

    def per_question_mean(values):
        return np.where(valid, values, 0.0).sum(axis=1) / n

    prompt = pool.prompt_tokens[mask]
    completion = pool.completion_tokens[mask]
    if unit == "tokens":
        return per_question_mean(prompt), per_question_mean(completion)
    pre, dec = pool.prefill_flops[mask], pool.decode_flops[mask]
    missing = valid & (np.isnan(pre) | np.isnan(dec))
    if missing.any():
        if arch is None:
            raise ValueError("the pool has samples without stored FLOPs; pass arch= to recompute them")
        pre = np.where(missing, prefill_flops(arch, prompt), pre)
        dec = np.where(missing, decode_flops(arch, prompt, completion), dec)
    return np.where(valid, pre, -np.inf).max(axis=1), per_question_mean(dec)


def x_axis(
    pool: Pool, ks, unit: str, *, questions=None, arch: ModelArch | None = None, verifier_flops=None
) -> np.ndarray:
    """x values for a pool curve's k grid in `unit` ("samples", "tokens" or "flops"; see module docstring): the
    mean over questions of `question_costs` at each k. `verifier_flops`, (Q,) the mean verifier pass per sample of
    each question, is added per sample for a rule that scores every sample (best-of-N)."""
    if unit not in X_UNITS:
        raise ValueError(f"unit {unit!r} is unknown; allowed: {', '.join(X_UNITS)}")
    ks = np.asarray(ks, dtype=np.float64)
    if unit == "samples":
        return ks
    once, per_k = question_costs(pool, unit, questions=questions, arch=arch)
    if unit == "flops" and verifier_flops is not None:
        per_k = per_k + np.asarray(verifier_flops, dtype=np.float64)[check_questions_mask(questions, pool.n_questions)]
    return (once[:, None] + ks[None, :] * per_k[:, None]).mean(axis=0)
