"""Verifier scores for a stored sample pool: what best-of-N and weighted best-of-N select with.

Generate once, analyse many: the pool is sampled once; each verifier then scores every stored sample (the whole
completion as one step: one verifier pass per sample, all of them in one batched call) and the scores land in
`scores` shards keyed by (run, model, question, sample, verifier). Re-running scores only what is missing.

A pass is charged by the ledger's one caching rule, the idealised prefix cache (backend.ledger.PrefixCache), as a
search charges it: a verifier that reads the generator's cache (self-verification on the generating engine) finds
the sample's prompt and prompt + completion processed, so it pays for the judge's suffix; any other verifier
finds nothing cached. The engine's cache report is never charged, so a pool's price is the same run to run. Each
row stores its one pass's token counts and the cached tokens charged (a whole sample is one step, one pass), from
which backend.pricing recomputes it."""

from __future__ import annotations

import pyarrow as pa

from backend.ledger import Ledger, PrefixCache
from backend.tasks.base import Question
from backend.verifiers.base import ScoreRequest, Verifier, charge
from store import Store
from store.schema import SCORES


def score_pool(
    store: Store,
    run_id: str,
    model: str,
    questions: list[Question],
    verifier: Verifier,
    chunk: int = 256,
    reads_generator_cache: bool = False,
) -> int:
    """Score every sample of (run, model) for `questions` not yet scored by `verifier`; returns how many were
    scored. `reads_generator_cache`: the verifier runs on the engine that generated the pool (module docstring)."""
    todo = store.query(
        """
        SELECT s.question_id, s.sample_idx, s.completion, s.prompt, s.prompt_tokens, s.completion_tokens
        FROM samples s
        WHERE s.run_id = ? AND s.model = ? AND list_contains(?, s.question_id) AND NOT EXISTS (
            SELECT 1 FROM scores c WHERE c.run_id = s.run_id AND c.model = s.model AND c.question_id = s.question_id
              AND c.sample_idx = s.sample_idx AND c.verifier = ?)
        ORDER BY s.question_id, s.sample_idx
        """,
        [run_id, model, [q.question_id for q in questions], verifier.name],
    )
    by_id = {q.question_id: q for q in questions}
    done = 0
    for start in range(0, len(todo), chunk):
        part = todo.iloc[start : start + chunk]
        requests = [
            ScoreRequest(by_id[qid], (text or "",)) for qid, text in zip(part["question_id"], part["completion"])
        ]
        results = verifier.score(requests)
        flops, passes = [], []
        for r, prompt, completion, p, d in zip(
            results, part["prompt"], part["completion"], part["prompt_tokens"], part["completion_tokens"]
        ):
            cache = PrefixCache()
            if reads_generator_cache:
                cache.add(prompt or "", int(p))
                cache.add((prompt or "") + (completion or ""), int(p) + int(d))
            charged: list[tuple[int, int, int]] = []
            flops.append(charge(Ledger(), verifier, r, cache, charged))
            if len(charged) > 1:  # a score row keeps one pass's tokens: more could not be re-priced from them
                raise ValueError(f"verifier {verifier.name} made {len(charged)} passes on one whole sample, not 1")
            passes.append(charged[0] if charged else (0, 0, 0))  # a free verifier (the oracle) is charged nothing
        table = pa.table(
            {
                "run_id": [run_id] * len(part),
                "model": [model] * len(part),
                "question_id": part["question_id"].tolist(),
                "sample_idx": part["sample_idx"].astype("int32").tolist(),
                "verifier": [verifier.name] * len(part),
                "score": [r.scores[-1] if r.scores else None for r in results],
                "step_scores": [list(r.scores) for r in results],
                "verifier_flops": flops,
                "verifier_prompt_tokens": [t[0] for t in passes],
                "verifier_cached_tokens": [t[1] for t in passes],
                "verifier_completion_tokens": [t[2] for t in passes],
            },
            schema=SCORES,
        )
        store.write_shard("scores", run_id, table)
        done += len(part)
    return done
