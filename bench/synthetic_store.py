"""A synthetic store with the real schema, for dashboard benchmarks, UI tests and metric experiments.

Nothing here pretends to be a model: every number is drawn from a seeded generator shaped like what sampling
runs produce (docs/ARCHITECTURE.md, "Facts the design rests on"): questions of graded difficulty, a per-question
success probability that falls with difficulty and rises with model size, a few distinct wrong answers per question (so majority vote differs from
coverage), verifier scores correlated with correctness but with false positives (so the imperfect-verifier
ceiling shows), token counts and FLOPs from the real ledger with architecture numbers close to the shipped
models, and a few search trees (nodes table) for the tree view. Shards go through `Store.write_shard`, runs
through the catalog, exactly as a worker writes them.

    python -m bench.synthetic_store DIR --questions 500 --samples 1000      # 2 models x 500 x 1000 = 1M samples

Prints `RESULT samples=<n> seconds=<s>` (the time to write them through the store).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from backend.ledger import ModelArch, decode_flops, prefill_flops
from backend.metrics.confidence import trace_confidence
from store import Store
from store.keys import question_key
from store.schema import NODES, QUESTIONS, SAMPLES, SCORES

# Architecture numbers near the shipped GGUFs (the real ones are read from GGUF metadata at run time).
SYNTHETIC_ARCHS: dict[str, ModelArch] = {
    "gemma-3-270m": ModelArch(n_params=170_000_000, n_layers=18, d_model=640, n_ctx_train=32768, d_attn=1024),
    "qwen2.5-coder-0.5b-instruct": ModelArch(n_params=360_000_000, n_layers=24, d_model=896, n_ctx_train=32768),
    "qwen2.5-coder-1.5b-instruct": ModelArch(n_params=1_310_000_000, n_layers=28, d_model=1536, n_ctx_train=32768),
}
_ABILITY = {"gemma-3-270m": -1.2, "qwen2.5-coder-0.5b-instruct": 0.0, "qwen2.5-coder-1.5b-instruct": 0.9}
DATASETS = ("basic_arithmetic", "chain_sum")
MAX_ROWS_PER_SHARD = 100_000


def _arch(model: str) -> ModelArch:
    return SYNTHETIC_ARCHS.get(model, SYNTHETIC_ARCHS["qwen2.5-coder-0.5b-instruct"])


def _questions(run_id: str, n_questions: int, rng: np.random.Generator) -> tuple[pa.Table, np.ndarray]:
    level = np.arange(n_questions) % 5
    dataset = np.array([DATASETS[i % len(DATASETS)] for i in range(n_questions)], dtype=object)
    qids = [f"{dataset[i]}/{level[i]}/{i}" for i in range(n_questions)]
    a = rng.integers(1, 10 ** (level + 1))
    b = rng.integers(1, 10 ** (level + 1))
    texts = [f"Calculate {x} + {y} (question {i})" for i, (x, y) in enumerate(zip(a, b))]  # distinct: one key each
    refs = [str(x + y) for x, y in zip(a, b)]
    table = pa.table(
        {
            "run_id": [run_id] * n_questions,
            "task": ["reasoning_gym"] * n_questions,
            "question_id": qids,
            "dataset": list(dataset),
            "question": texts,
            "reference": refs,
            "difficulty": [
                json.dumps({"config": {"min_digits": int(lv) + 1, "max_digits": int(lv) + 1}}) for lv in level
            ],
            "level": level.astype(np.float64),
            "question_key": [question_key("reasoning_gym", d, t, r) for d, t, r in zip(dataset, texts, refs)],
        },
        schema=QUESTIONS,
    )
    return table, level


def _sample_tables(run_id, model, qtable, level, n_samples, verifiers, rng, created, inverted=(), truncated=0.0):
    """Yield (samples, scores) tables of at most MAX_ROWS_PER_SHARD rows, question-major; a `truncated` share of
    the samples is cut at max_tokens (512 tokens, no answer, wrong)."""
    n_q = qtable.num_rows
    arch = _arch(model)
    # per-question pass@1: logistic in (ability - difficulty + noise)
    logit = _ABILITY.get(model, 0.0) + 1.6 - 1.1 * level + rng.normal(0, 1.2, n_q)
    p = 1.0 / (1.0 + np.exp(-logit))
    p[rng.random(n_q) < 0.12] = 0.0  # some questions are never solved
    qids = qtable.column("question_id").to_pylist()
    refs = qtable.column("reference").to_pylist()
    datasets = qtable.column("dataset").to_pylist()
    questions = qtable.column("question").to_pylist()
    keys = qtable.column("question_key").to_pylist()
    prompt_tokens = rng.integers(60, 140, n_q)
    per_shard = max(1, MAX_ROWS_PER_SHARD // n_samples)
    for lo in range(0, n_q, per_shard):
        hi = min(n_q, lo + per_shard)
        rows = (hi - lo) * n_samples
        qi = np.repeat(np.arange(lo, hi), n_samples)
        idx = np.tile(np.arange(n_samples, dtype=np.int32), hi - lo)
        cut = rng.random(rows) < truncated
        correct = (rng.random(rows) < p[qi]) & ~cut
        # wrong answers: mostly one popular mistake per question, sometimes others, sometimes none at all
        wrong_pick = rng.choice(4, size=rows, p=[0.55, 0.2, 0.15, 0.1])
        ref_arr = np.asarray(refs, dtype=object)[qi]
        answers = np.where(
            correct,
            ref_arr,
            np.where(
                (wrong_pick == 3) | cut,
                None,
                np.char.add(ref_arr.astype(str), np.char.add("_w", wrong_pick.astype(str))),
            ),
        )
        completion_tokens = np.clip(rng.normal(110 + 25 * level[qi], 30), 5, 512).astype(np.int32)
        completion_tokens[cut] = 512
        pt = prompt_tokens[qi].astype(np.int32)
        pre = prefill_flops(arch, pt)
        dec = decode_flops(arch, pt, completion_tokens)
        score = np.where(correct, 1.0, np.where(answers == None, 0.0, 0.01))  # noqa: E711
        # token confidences in 1/16 nats: right samples a little more confident, as DeepConf observes
        level_of = np.where(correct, 28.0, 20.0) + rng.normal(0, 4, rows)
        confidence = np.clip(np.repeat(level_of, completion_tokens) + rng.normal(0, 6, completion_tokens.sum()), 0, 255)
        offsets = np.concatenate([[0], np.cumsum(completion_tokens)]).astype(np.int32)
        token_confidence = pa.ListArray.from_arrays(pa.array(offsets), pa.array(confidence.astype(np.uint16)))
        samples = pa.table(
            {
                "run_id": pa.array([run_id] * rows, pa.string()),
                "model": pa.array([model] * rows, pa.string()),
                "task": pa.array(["reasoning_gym"] * rows, pa.string()),
                "question_id": pa.array(np.asarray(qids, dtype=object)[qi], pa.string()),
                "sample_idx": pa.array(idx, pa.int32()),
                "strategy": pa.array(["sample"] * rows, pa.string()),
                "prompt": pa.array(np.asarray(questions, dtype=object)[qi], pa.string()),
                # three wordings per answer (by sample index): repeated reasoning paths, as RPC's rule dedupes
                "completion": pa.array(
                    [
                        f"Let me add step by step{'.' * (1 + i % 3)}\n\nAnswer: {a}"
                        if a is not None
                        else "I am not sure."
                        for a, i in zip(answers, idx)
                    ],
                    pa.string(),
                ),
                "answer": pa.array(answers, pa.string()),
                "score": pa.array(score, pa.float64()),
                "correct": pa.array(correct, pa.bool_()),
                "prompt_tokens": pa.array(pt, pa.int32()),
                "cached_prompt_tokens": pa.array(np.where(idx > 0, pt, 0), pa.int32()),
                "completion_tokens": pa.array(completion_tokens, pa.int32()),
                "logprob_sum": pa.array(-completion_tokens * rng.uniform(0.2, 0.8, rows), pa.float64()),
                "logprob_mean": pa.array(-rng.uniform(0.2, 0.8, rows), pa.float64()),
                "finish_reason": pa.array(np.where(completion_tokens >= 512, "length", "stop"), pa.string()),
                "latency_s": pa.array(completion_tokens / 60.0, pa.float64()),
                "prefill_flops": pa.array(pre, pa.float64()),
                "decode_flops": pa.array(dec, pa.float64()),
                "flops": pa.array(dec + pre / n_samples, pa.float64()),
                "seed": pa.array(rng.integers(0, 2**31, rows), pa.int64()),
                "created_at": pa.array([created] * rows, pa.timestamp("us", tz="UTC")),
                "grade_error": pa.nulls(rows, pa.string()),
                "dataset": pa.array(np.asarray(datasets, dtype=object)[qi], pa.string()),
                "token_confidence": token_confidence,
                "question_key": pa.array(np.asarray(keys, dtype=object)[qi], pa.string()),
                "trace_confidence": pa.array(trace_confidence(token_confidence), pa.float64()),
            },
            schema=SAMPLES,
        )
        score_tables = []
        for j, verifier in enumerate(verifiers):
            # imperfect verifier: correct ~ Beta(5,2), wrong ~ Beta(2,5), with a share of confident false positives
            good = rng.beta(5 + j, 2, rows)
            bad = np.where(rng.random(rows) < 0.08, rng.beta(6, 2, rows), rng.beta(2, 5 + j, rows))
            s = np.where(correct, good, bad)
            if verifier in inverted:  # a judge that prefers wrong answers (the 0.5B model judging itself can)
                s = 1.0 - s
            score_tables.append(
                pa.table(
                    {
                        "run_id": pa.array([run_id] * rows, pa.string()),
                        "model": pa.array([model] * rows, pa.string()),
                        "question_id": samples.column("question_id"),
                        "sample_idx": samples.column("sample_idx"),
                        "verifier": pa.array([verifier] * rows, pa.string()),
                        "score": pa.array(s, pa.float64()),
                        "step_scores": pa.array([None] * rows, pa.list_(pa.float64())),
                        "verifier_flops": pa.array(prefill_flops(arch, pt + completion_tokens), pa.float64()),
                        "verifier_prompt_tokens": pa.array(pt + completion_tokens, pa.int32()),
                        "verifier_cached_tokens": pa.array(np.zeros(rows, np.int32), pa.int32()),
                        "verifier_completion_tokens": pa.array(np.zeros(rows, np.int32), pa.int32()),
                    },
                    schema=SCORES,
                )
            )
        yield samples, score_tables


def _search_trees(run_id, model, qtable, n_trees, rng) -> pa.Table:
    """Beam-search-shaped trees: 4 roots, keep the best 2 per depth, expand each twice, 3 levels."""
    rows = []
    qids = qtable.column("question_id").to_pylist()
    refs = qtable.column("reference").to_pylist()
    keys = qtable.column("question_key").to_pylist()
    for t in range(min(n_trees, len(qids))):
        next_id = 0
        frontier = []
        config = json.dumps({"beam_width": 2, "n_beams": 4, "budget": 16}, sort_keys=True)
        for depth in range(3):
            parents = [-1] * 4 if depth == 0 else [p for p in frontier for _ in range(2)]
            created = []
            for parent in parents:
                score = float(rng.beta(4, 3))
                final = depth == 2
                correct = bool(final and rng.random() < 0.5)
                rows.append(
                    dict(
                        run_id=run_id,
                        model=model,
                        strategy="beam_search",
                        config=config,
                        question_id=qids[t],
                        node_id=next_id,
                        parent_id=parent,
                        depth=depth,
                        step_text=f"Step {depth + 1}: partial sum",
                        step_score=score,
                        prompt_tokens=80,
                        cached_prompt_tokens=60,
                        completion_tokens=24,
                        generator_flops=1e9,
                        verifier_flops=2e8,
                        is_final=final,
                        selected=False,
                        answer=(refs[t] if correct else refs[t] + "_w0") if final else None,
                        correct=correct if final else None,
                        finish_reason="stop" if final else None,
                        kind="root" if depth == 0 else ("answer" if final else "step"),
                        question_key=keys[t],
                    )
                )
                created.append((score, next_id))
                next_id += 1
            frontier = [i for _, i in sorted(created, reverse=True)[:2]]
        finals = [r for r in rows if r["question_id"] == qids[t] and r["is_final"]]
        max(finals, key=lambda r: r["step_score"])["selected"] = True
    return pa.Table.from_pylist(rows, schema=NODES)


def search_configuration_table(
    run_id: str,
    model: str,
    strategy: str,
    record: dict,
    budget_flops: float,
    correct: dict,
    *,
    nodes_per_tree: int = 7,
    unaffordable=(),
    spend: float = 0.9,
) -> pa.Table:
    """One search configuration at one budget as NODES rows: per question a root and `nodes_per_tree - 1`
    children (two levels, the deeper ones final) spending `spend` of the budget in all, the selected final node
    right or wrong as `correct[question_id]` says; questions in `unaffordable` get a root only (the budget paid
    no round). The record is stored with its budget, as the worker stores it."""
    config = json.dumps({**record, "budget_flops": budget_flops}, sort_keys=True)
    n_children = max(1, nodes_per_tree - 1)
    per_node = budget_flops * spend / n_children
    qids = list(correct)
    rows_per_q = np.where(np.isin(qids, list(unaffordable)), 1, n_children + 1)
    n = int(rows_per_q.sum())
    q_of = np.repeat(np.arange(len(qids)), rows_per_q)
    first = np.cumsum(rows_per_q) - rows_per_q
    node_id = np.arange(n) - first[q_of]
    half = max(1, n_children // 2)
    depth = np.where(node_id == 0, 0, np.where(node_id <= half, 1, 2))
    final = (depth == 2) | ((depth == 1) & (n_children == 1))
    last = node_id == rows_per_q[q_of] - 1
    ok = np.asarray([bool(correct[q]) for q in qids])[q_of]
    selected = final & last
    refs = np.where(final, np.where(selected & ok, "right", "wrong"), None)
    return pa.table(
        {
            "run_id": [run_id] * n,
            "model": [model] * n,
            "strategy": [strategy] * n,
            "config": [config] * n,
            "question_id": np.asarray(qids, dtype=object)[q_of],
            "node_id": node_id,
            "parent_id": np.where(depth == 0, -1, np.where(depth == 1, 0, 1)),
            "depth": depth.astype(np.int32),
            "step_text": ["step"] * n,
            "step_score": np.full(n, 0.5),
            "prompt_tokens": np.full(n, 80, np.int32),
            "cached_prompt_tokens": np.full(n, 60, np.int32),
            "completion_tokens": np.full(n, 24, np.int32),
            "generator_flops": np.where(depth == 0, 0.0, per_node * 0.8),
            "verifier_flops": np.where(depth == 0, 0.0, per_node * 0.2),
            "is_final": final,
            "selected": selected,
            "answer": refs,
            "correct": np.where(final, selected & ok, None),
            "finish_reason": np.where(depth == 0, None, "stop"),
            "grade_error": pa.nulls(n, pa.string()),
            "kind": np.where(depth == 0, "root", np.where(final, "answer", "step")),
            "question_key": pa.nulls(n, pa.string()),  # read from the run's questions (store/schema.KEYED_BY_QUESTIONS)
            "ledger_cached_tokens": pa.nulls(n, pa.int32()),  # synthetic FLOPs: not the ledger's
            "verifier_pass_prompt_tokens": pa.nulls(n, pa.list_(pa.int32())),
            "verifier_pass_cached_tokens": pa.nulls(n, pa.list_(pa.int32())),
            "verifier_pass_completion_tokens": pa.nulls(n, pa.list_(pa.int32())),
        },
        schema=NODES,
    )


def make_synthetic_store(
    dir,
    n_questions: int = 500,
    n_samples: int = 1000,
    models=("gemma-3-270m", "qwen2.5-coder-0.5b-instruct"),
    verifiers=("prm-synthetic", "self-verify"),
    seed: int = 0,
    n_trees: int = 3,
    inverted_verifiers=(),
    truncated: float = 0.0,
) -> Store:
    """Write one done sampling run per model (n_questions × n_samples each) plus search trees; return the store.
    Total samples = len(models) · n_questions · n_samples (2 · 500 · 1000 = 1M by default). Verifiers named in
    `inverted_verifiers` score wrong answers above correct ones; a `truncated` share of samples is cut at
    max_tokens (the Data-quality warning's case)."""
    store = Store.open(dir)
    rng = np.random.default_rng(seed)
    created = datetime.now(UTC) - timedelta(hours=1)
    for m_i, model in enumerate(models):
        name = f"synthetic-{model.split('-')[0]}-{m_i}"
        run_id = f"{name}-{seed:04d}{m_i:06d}"
        spec = {
            "name": name,
            "models": [model],
            "task": {
                "kind": "reasoning_gym",
                "datasets": [
                    {"name": d, "size": n_questions // len(DATASETS), "config": {}, "level": None} for d in DATASETS
                ],
            },
            "samples_per_question": n_samples,
            "temperature": 0.8,
            "top_p": 1.0,
            "max_tokens": 512,
            "seed": seed,
        }
        store.upsert_run(run_id, name, spec, n_questions * n_samples, "running")
        qtable, level = _questions(run_id, n_questions, np.random.default_rng(seed))  # same questions per model
        store.write_shard("questions", run_id, qtable)
        for samples, scores in _sample_tables(
            run_id, model, qtable, level, n_samples, list(verifiers), rng, created, tuple(inverted_verifiers), truncated
        ):
            store.write_shard("samples", run_id, samples)
            for s in scores:
                store.write_shard("scores", run_id, s)
        if n_trees:
            store.write_shard("nodes", run_id, _search_trees(run_id, model, qtable, n_trees, rng))
        store.finish_run(run_id, "done")
    return store


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--questions", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--models", default="gemma-3-270m,qwen2.5-coder-0.5b-instruct")
    p.add_argument("--verifiers", default="prm-synthetic,self-verify")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    store = make_synthetic_store(a.dir, a.questions, a.samples, a.models.split(","), a.verifiers.split(","), a.seed)
    seconds = time.perf_counter() - t0
    print(f"synthetic store at {store.root}")
    print(f"RESULT samples={store.query('SELECT count(*) AS n FROM samples')['n'][0]} seconds={seconds:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
