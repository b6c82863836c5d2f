"""Benchmark: how well, and how cheaply, each self-verification judge tells the default model's correct answers from
its wrong ones. Same questions and model as bench/search.py.

Samples a pool (questions × samples, temperature 0.8), grades it with the task's checker, then scores every sample
with each judge of backend/verifiers/self_verify.py (`self_verify`: inline suffix; `self_verify_chat`: a chat user
turn) through `SelfVerifier.score`, the code path searches use. Prints per judge its suffix length, the wall time of
scoring the whole pool, and AUROC (backend.metrics.verifier_quality.auroc) with a 95% bootstrap interval over
questions; then one last line:
  RESULT auroc_inline=<x> auroc_chat=<x> judge_seconds_inline_over_chat=<x>
- auroc_*: P(a correct sample scores above a wrong one); 0.5 is a coin;
- judge_seconds_inline_over_chat: wall time of judging the pool inline / in a chat turn. Pool scoring, as the
  worker does it: a slot holds only the last text it generated, so most judges re-read their sample and the ratio
  understates the suffix's share (a search judges each step on the slot that just wrote it: bench/search.py).

Usage: TTC_CACHE_DIR=/tmp/ttccache .venv/bin/python bench/verifier_quality.py [--questions 20 --samples 8]"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TTC_CACHE_DIR", "/tmp/ttccache")

from backend.engines.base import GenerationRequest, SamplingParams  # noqa: E402
from backend.engines.llamacpp import LlamaCppEngine  # noqa: E402
from backend.metrics.verifier_quality import auroc  # noqa: E402
from backend.models.registry import DEFAULT_MODEL, resolve_model  # noqa: E402
from backend.prompting import build_prompt, stop_sequences  # noqa: E402
from backend.verifiers import ScoreRequest, create_verifier  # noqa: E402
from backend.verifiers.self_verify import BOUNDARY_TOKENS  # noqa: E402
from bench.search import arithmetic_task  # noqa: E402


def bootstrap_interval(
    scores: np.ndarray, correct: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the AUROC, resampling whole questions (a question's samples are not independent)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, scores.shape[0], size=(n_boot, scores.shape[0]))
    values = np.array([auroc(scores[p], correct[p]) for p in picks])
    return tuple(np.nanpercentile(values, [2.5, 97.5]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--parallel", type=int, default=8)
    args = ap.parse_args()

    model = resolve_model(DEFAULT_MODEL)
    task = arithmetic_task(args.questions)
    questions = task.questions()
    engine = LlamaCppEngine(model, n_parallel=args.parallel, n_ctx_per_slot=1024)
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens, stop=stop_sequences(model, task))
    requests = [
        GenerationRequest(
            build_prompt(model, task, q), dataclasses.replace(params, seed=i), n=args.samples, affinity=q.question_id
        )
        for i, q in enumerate(questions)
    ]
    t0 = time.perf_counter()
    pool = engine.generate(requests)
    print(f"pool: {args.questions} questions × {args.samples} samples in {time.perf_counter() - t0:.0f}s", flush=True)
    texts = [[c.text for c in comps] for comps in pool]
    correct = np.array([[task.grade(q, t).correct for t in row] for q, row in zip(questions, texts)])
    print(f"correct: {int(correct.sum())} of {correct.size}", flush=True)

    results = {}
    for name in ("self_verify", "self_verify_chat"):
        verifier = create_verifier(name, task=task, engine=engine, model=model)
        verifier.turn_bound()  # the one-off measurement, outside the timing
        t0 = time.perf_counter()
        out = verifier.score([ScoreRequest(q, (t,)) for q, row in zip(questions, texts) for t in row])
        seconds = time.perf_counter() - t0
        scores = np.array([r.scores[0] for r in out]).reshape(correct.shape)
        value, (low, high) = auroc(scores, correct), bootstrap_interval(scores, correct)
        suffix_tokens = verifier.turn_bound() - BOUNDARY_TOKENS  # the bound is the suffix's tokens + a margin
        results[name] = dict(auroc=value, seconds=seconds)
        print(
            f"{name}: suffix={verifier.turn!r} ({suffix_tokens} tokens) seconds={seconds:.1f} auroc={value:.3f} "
            f"[{low:.2f}, {high:.2f}] mean_score correct={scores[correct].mean():.3f} wrong={scores[~correct].mean():.3f}",
            flush=True,
        )
    engine.close()
    inline, chat = results["self_verify"], results["self_verify_chat"]
    print(
        f"RESULT auroc_inline={inline['auroc']:.3f} auroc_chat={chat['auroc']:.3f} "
        f"judge_seconds_inline_over_chat={inline['seconds'] / chat['seconds']:.2f}"
    )


if __name__ == "__main__":
    main()
