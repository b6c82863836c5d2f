"""Pricing: the one place where a budget unit becomes FLOPs and where a generator or verifier pass is priced.

Every consumer — the spec (`RunSpec.budgets_flops`), the adaptive allocator (`allocation.total_flops`), the search
analysis (`analysis._budgets_flops`), the Run page's "what this budget buys" (`budget_preview`), the compute-optimal
labels ("≈ x samples", `StrategyTable.one_sample_flops`) and cost-of-pass — calls the functions below, so one
spec, one model and one question set give one number everywhere.

**A pass** (`pass_flops`, defined beside the Ledger that charges it and imported here): a forward pass over a prompt of P tokens of which c are served from the idealised prefix
cache, generating D tokens, costs
    prefill(P, c) + decode(P, D) = span(c, P) + span(P, P + D)        (backend/ledger.py's span_flops)
The cache is always the *idealised* one (`ledger.PrefixCache`: the longest text the same question's work has
already processed), never the engine's report, which depends on which llama.cpp slot served a request.

**One sample** ("1 sample", the budget unit of `budgets:` and `adaptive.total_budget`) of a question whose prompt
has P_q tokens, with the spec's `max_tokens` = M:
    sample_flops(q) = prefill(P_q) + decode(P_q, M)
i.e. the prompt read once (a pool's further samples find it cached) plus the stated per-sample tokens. Over a
question set the unit is the mean:
    one_sample = mean_q sample_flops(q),     budget b samples = b · one_sample   (FLOPs per question)
over the question set's distinct questions (`distinct_questions`: a question drawn twice counts once, as in pools)
P_q is the model's own tokenizer's count of the question's prompt (`Engine.count_tokens`), which is what the engine
reports as the prompt tokens of every sample of q: the stored `samples.prompt_tokens`.

**Reproducing every figure from stored columns** (with the model's n_params, n_layers and width, ledger.ModelArch):
- a sample's `prefill_flops` = span(0, prompt_tokens); `decode_flops` = span(prompt_tokens, prompt_tokens +
  completion_tokens) (one prefill per question: a pool of n samples pays max(prefill_flops) once);
- one sample (the unit) = mean over the run's questions of span(0, P_q) + span(P_q, P_q + max_tokens), P_q =
  max(samples.prompt_tokens) of question q, max_tokens from `runs.spec_json`; a `budgets:` entry b = b · unit;
- a pool score's `verifier_flops` = span(verifier_cached_tokens, verifier_prompt_tokens) +
  span(verifier_prompt_tokens, verifier_prompt_tokens + verifier_completion_tokens) at the verifier's size, where
  verifier_cached_tokens = min(prompt_tokens + completion_tokens of the scored sample, verifier_prompt_tokens) when
  the verifier reads the generator's cache (self-verification on the generating engine: the idealised cache holds
  the sample's prompt + completion, as a search's does), else 0;
- a search node's `generator_flops` = span(ledger_cached_tokens, prompt_tokens) + span(prompt_tokens,
  prompt_tokens + completion_tokens) (0 on a root, which generates nothing);
- a search node's `verifier_flops` = Σ over the passes i charged to it of span(c_i, p_i) + span(p_i, p_i + d_i) at
  the verifier's size, (p_i, c_i, d_i) the i-th entries of `verifier_pass_prompt_tokens`,
  `verifier_pass_cached_tokens`, `verifier_pass_completion_tokens` (a node judged step by step, or a root charged an
  eager judge nobody asked for, holds several passes; the spans depend on positions, so the passes are stored
  apart); a free verifier (the oracle) stores no pass and 0;
- a search's spend on a question = Σ over its nodes of generator_flops + verifier_flops: every engine call a search
  makes is a node (lookahead rollouts and revisions included: a revision's prompt, the earlier attempts inside it,
  is its node's prompt_tokens), and a round's `extra_flops` is only an estimate, never charged;
- a pool rule's spend at k samples of question q = max_s prefill_flops + k · (mean_s decode_flops + the mean
  verifier_flops of q's scored samples, for best-of-N and weighted best-of-N), over q's samples s;
- an adaptive run's spend = Σ_q max_s prefill_flops + Σ_s decode_flops over its samples, and its total = the
  spec's `total_budget` (times its questions when `per_question`) · one sample of its questions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from backend.ledger import ModelArch, decode_flops, pass_flops, prefill_flops, samples_affordable

if TYPE_CHECKING:
    from backend.engines.llamacpp import LlamaCppEngine

BUDGET_UNITS = ("samples", "flops")


def sample_flops(arch: ModelArch, prompt_tokens, sample_tokens):
    """One sample of a question: its prompt's prefill + `sample_tokens` of decode (vectorised over questions)."""
    return pass_flops(arch, prompt_tokens, 0, sample_tokens)


def pool_flops(arch: ModelArch, prompt_tokens, sample_tokens, samples: int):
    """k samples of one question: its prompt prefilled once (the prefix cache serves the rest), then `samples`
    decodes of `sample_tokens` each (vectorised over questions; a study's size in `backend.planning`)."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    return prefill_flops(arch, p) + samples * decode_flops(arch, p, np.asarray(sample_tokens, dtype=np.float64))


def one_sample_flops(arch: ModelArch, prompt_tokens: Iterable[float], sample_tokens: float) -> float:
    """The budget unit "1 sample" of a question set: the mean over its questions of `sample_flops`."""
    p = np.asarray(list(prompt_tokens) if not isinstance(prompt_tokens, np.ndarray) else prompt_tokens, np.float64)
    if p.size == 0:
        raise ValueError("pricing a sample needs at least one question's prompt tokens")
    return float(np.mean(sample_flops(arch, p, float(sample_tokens))))


def budget_flops(
    arch: ModelArch, budgets: Sequence[float], unit: str, prompt_tokens: Iterable[float], sample_tokens: float
) -> list[float]:
    """`budgets` (per question) in FLOPs: FLOPs as given, samples times `one_sample_flops`."""
    if unit not in BUDGET_UNITS:
        raise ValueError(f"budget unit {unit!r} is unknown; allowed: {', '.join(BUDGET_UNITS)}")
    if unit == "flops":
        return [float(b) for b in budgets]
    one = one_sample_flops(arch, prompt_tokens, sample_tokens)
    return [float(b) * one for b in budgets]


def samples_bought(arch: ModelArch, budget, prompt_tokens: float, sample_tokens: float) -> np.ndarray:
    """Whole samples of one prompt a per-question FLOP budget buys: one prefill, then `sample_tokens` of decode each
    (ledger.samples_affordable; 0 when not even the prefill fits)."""
    return samples_affordable(
        budget, prefill_flops(arch, prompt_tokens), decode_flops(arch, prompt_tokens, sample_tokens)
    )


def pool_one_sample_flops(pool, arch: ModelArch, sample_tokens: float) -> float:
    """ "1 sample" of a stored pool's questions: each question's prompt tokens are its samples' stored count (the
    engine's tokenizer's, the count the run was priced with)."""
    per_question = np.where(pool.valid, pool.prompt_tokens, -np.inf).max(axis=1)
    return one_sample_flops(arch, per_question, sample_tokens)


def runs_max_tokens(con, run_ids: Sequence[str]) -> int | None:
    """The `max_tokens` of the runs' specs (the catalog's copy in a Store connection); the largest where they differ,
    None when no run's spec is there."""
    try:
        rows = con.execute("SELECT spec_json FROM runs WHERE list_contains(?, run_id)", [list(run_ids)]).fetchall()
    except Exception:  # noqa: BLE001 - a connection without the catalog's runs (a bare DuckDB over shards)
        return None
    values = [json.loads(r[0]).get("max_tokens", 256) for r in rows if r[0]]
    return max(values) if values else None


TokenCounter = Callable[[str], int]


def distinct_questions(questions: Sequence) -> list:
    """The questions "1 sample" averages over: one per identity (`Question.key`), first occurrence kept. A question a
    task draws twice is one question, as the pools count it, so the unit of a run and of its pool agree."""
    seen: set[str] = set()
    out = []
    for q in questions:
        if q.key not in seen:
            seen.add(q.key)
            out.append(q)
    return out


def prompt_tokens(model, task, questions: Sequence, count: TokenCounter) -> np.ndarray:
    """(Q,) each question's prompt as the model sees it (prompting.build_prompt), counted by the model's tokenizer."""
    from backend.prompting import build_prompt

    return np.asarray([int(count(build_prompt(model, task, q))) for q in questions], dtype=np.float64)


@dataclass(frozen=True)
class BudgetPreview:
    """What FLOP budgets per question buy on one model and question set (the Run page's table)."""

    budgets: np.ndarray  # (B,) FLOPs per question
    one_sample: float  # FLOPs of "1 sample" (one_sample_flops)
    samples: np.ndarray  # (B,) the budget in samples (budget / one_sample)
    whole_samples: np.ndarray  # (B,) whole samples the mean-length question affords (prompt once, then each)
    prompt_tokens: float  # mean prompt tokens over the questions
    prefill: float  # mean prefill FLOPs
    per_sample: float  # mean decode FLOPs of one sample of max_tokens


def budget_preview(
    arch: ModelArch, budgets: Sequence[float], prompt_tokens: Iterable[float], sample_tokens: float
) -> BudgetPreview:
    """What each budget buys: its size in samples of this question set, and the whole samples (prompt once, then
    `sample_tokens` each, both at the questions' mean cost) it pays for."""
    p = np.asarray(list(prompt_tokens), dtype=np.float64)
    b = np.asarray(budgets, dtype=np.float64)
    one = one_sample_flops(arch, p, sample_tokens)
    pre = float(np.mean(prefill_flops(arch, p)))
    dec = float(np.mean(decode_flops(arch, p, float(sample_tokens))))
    return BudgetPreview(b, one, b / one, samples_affordable(b, pre, dec), float(p.mean()), pre, dec)


_TOKENIZERS: dict[str, LlamaCppEngine] = {}
_TOKENIZERS_LOCK = threading.Lock()


def model_tokenizer(model) -> LlamaCppEngine:
    """The model's own tokenizer where no engine is loaded yet (the Run page, the planner, `ttc import
    --tokenizer`): llama.cpp on one slot, used only for /tokenize. Loading it maps the GGUF (seconds), so one per
    model file is kept for the process's life and never closed: xllamacpp's server shutdown joins its HTTP thread,
    which was seen blocked in accept() forever once, with the interpreter's lock held (a whole test process hung);
    a tokenizer that is never torn down cannot hit that."""
    from backend.engines.llamacpp import LlamaCppEngine

    key = str(model.path)
    with _TOKENIZERS_LOCK:
        if key not in _TOKENIZERS:
            _TOKENIZERS[key] = LlamaCppEngine(model, n_parallel=1, n_ctx_per_slot=256, threads=1)
        return _TOKENIZERS[key]


def model_token_counter(model) -> TokenCounter:
    """`model_tokenizer`'s prompt token count."""
    return model_tokenizer(model).count_tokens


def task_prompt_tokens(task: dict, seed: int, model, count: TokenCounter) -> np.ndarray:
    """(Q,) prompt tokens of the questions a spec's `task:` (a form's dict) generates with `seed`, on `model`."""
    from backend.tasks import create_task, task_options

    made = create_task(task_options(task, "task"), seed=seed)
    return prompt_tokens(model, made, distinct_questions(made.questions()), count)
