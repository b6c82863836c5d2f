"""Column layout of the immutable Parquet shards that workers append (`store/store.py` says why shards).

Each table is one pyarrow schema. Adding a column is a named migration in `store/migrations.py` that bumps
`SHARD_SCHEMA_VERSION` (recorded in the catalog's store_meta); readers use `union_by_name`, and `Store.connect`
adds a column no shard has yet as NULL, so old stores read the new column as NULL."""

from __future__ import annotations

import pyarrow as pa

from store.keys import QUESTION_KEY_SQL

SHARD_SCHEMA_VERSION = 10

SAMPLES = pa.schema(
    [
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("task", pa.string()),  # the task suite's kind, as in questions.task (NULL in shards of layout < 4)
        ("question_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("strategy", pa.string()),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("answer", pa.string()),
        ("score", pa.float64()),
        ("correct", pa.bool_()),
        ("prompt_tokens", pa.int32()),
        ("cached_prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("logprob_sum", pa.float64()),
        ("logprob_mean", pa.float64()),
        ("finish_reason", pa.string()),
        ("latency_s", pa.float64()),
        ("prefill_flops", pa.float64()),
        ("decode_flops", pa.float64()),
        ("flops", pa.float64()),
        ("seed", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("grade_error", pa.string()),  # the task's checker raised on this sample (answer, score, correct are NULL)
        ("dataset", pa.string()),  # the question's dataset (reasoning-gym dataset, HumanEval, a JSONL's subject)
        # per generated token, DeepConf's confidence in 1/16 nats (backend/metrics/confidence.py); NULL before layout 5,
        # one byte (uint8) in layouts 5-7
        ("token_confidence", pa.list_(pa.uint16())),
        ("question_key", pa.string()),  # the question's identity (store/keys.question_key); layout 7
        # the trace's confidence from its token confidences, in nats (backend/metrics/confidence.trace_confidence),
        # written beside them so a pool load never reads the token lists; NULL before layout 10 (then computed on read)
        # and where the sample has no token confidences
        ("trace_confidence", pa.float64()),
    ]
)
"""One row per generated sample. `flops` = decode_flops + prefill_flops / samples_per_question: the prompt is
prefilled once per question thanks to the prefix cache (backend/ledger.py)."""

QUESTIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("question_id", pa.string()),
        ("dataset", pa.string()),
        ("question", pa.string()),
        ("reference", pa.string()),
        ("difficulty", pa.string()),  # JSON of the task's difficulty knobs / metadata
        ("level", pa.float64()),  # a numeric difficulty level where the task has one
        ("question_key", pa.string()),  # the question's identity; NULL before layout 7 (READ_AS computes it)
    ]
)

SCORES = pa.schema(
    [
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("question_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("verifier", pa.string()),
        ("score", pa.float64()),  # aggregated over steps
        ("step_scores", pa.list_(pa.float64())),
        ("verifier_flops", pa.float64()),
        # the pass as the ledger charged it (layout 9; NULL before): tokens read, of them served by the idealised
        # prefix cache, and generated. verifier_flops = backend.pricing.pass_flops of these at the verifier's size
        ("verifier_prompt_tokens", pa.int32()),
        ("verifier_cached_tokens", pa.int32()),
        ("verifier_completion_tokens", pa.int32()),
    ]
)
"""Verifier scores of pooled samples; any verifier's scores can drive best-of-N selection."""

NODES = pa.schema(
    [
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("strategy", pa.string()),
        ("config", pa.string()),  # JSON of the strategy's parameters, incl. budget
        ("question_id", pa.string()),
        ("node_id", pa.int64()),
        ("parent_id", pa.int64()),  # -1 for a root
        ("depth", pa.int32()),
        ("step_text", pa.string()),
        ("step_score", pa.float64()),
        ("prompt_tokens", pa.int32()),
        ("cached_prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("generator_flops", pa.float64()),
        ("verifier_flops", pa.float64()),
        ("is_final", pa.bool_()),  # a leaf that is a complete candidate solution
        ("selected", pa.bool_()),  # the strategy's final pick
        ("answer", pa.string()),
        ("correct", pa.bool_()),
        ("finish_reason", pa.string()),  # the engine's: stop | length (NULL for a root)
        ("grade_error", pa.string()),  # the task's checker raised on this final node
        ("kind", pa.string()),  # root | step | rollout | revision | extension | answer
        ("question_key", pa.string()),  # the question's identity; layout 7
        # the prompt tokens the ledger charged as cached (the search's idealised prefix cache; layout 9, NULL before
        # and on roots): generator_flops = backend.pricing.pass_flops(prompt_tokens, this, completion_tokens)
        ("ledger_cached_tokens", pa.int32()),
        # every verifier pass charged to the node, in charge order (layout 9; NULL before): tokens read, of them
        # served by the idealised prefix cache, and generated. verifier_flops = the sum over passes of
        # backend.pricing.pass_flops at the verifier's size (a pass's cost depends on its positions, so the passes
        # are kept apart, not summed)
        ("verifier_pass_prompt_tokens", pa.list_(pa.int32())),
        ("verifier_pass_cached_tokens", pa.list_(pa.int32())),
        ("verifier_pass_completion_tokens", pa.list_(pa.int32())),
    ]
)
"""Search trajectories (beam, lookahead, revisions, ...): one row per node of the tree."""

ALLOCATIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("question_id", pa.string()),
        ("round", pa.int32()),
        ("first_idx", pa.int32()),  # the samples given are sample_idx first_idx .. first_idx + samples - 1
        ("samples", pa.int32()),
        ("flops_bound", pa.float64()),  # what they may cost at most (what the round reserved)
        ("predicted_difficulty", pa.float64()),  # 1 - the leading answer's share of the votes so far
        ("settled_probability", pa.float64()),  # the stopping statistic
        ("reason", pa.string()),  # first_round | open | hopeless | settled | at_cap | out_of_budget
        # the inputs of the decision, so it replays (backend/execution/allocation.replay)
        ("remaining_flops", pa.float64()),  # the budget left before the round
        ("samples_before", pa.int32()),
        ("votes", pa.int32()),
        ("leader", pa.int32()),
        ("runner_up", pa.int32()),
        ("prefill_bound", pa.float64()),
        ("sample_bound", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""Adaptive runs (the spec's `adaptive:`): one row per question per allocation round, written before the round's
samples are generated, so a resumed run finishes the round it decided and every decision can be replayed."""

TABLES: dict[str, pa.Schema] = {
    "samples": SAMPLES,
    "questions": QUESTIONS,
    "scores": SCORES,
    "nodes": NODES,
    "allocations": ALLOCATIONS,
}

READ_AS: dict[str, dict[str, str]] = {
    # before layout 7 a question had no stored key: its content gives it (questions), or its run's questions row
    # does (samples, nodes: KEYED_BY_QUESTIONS)
    "questions": {"question_key": f"coalesce(question_key, {QUESTION_KEY_SQL})"},
    # layout 3 stored the dataset in samples.task: such shards read it as `dataset`, their suite kind unknown
    "samples": {
        "dataset": "coalesce(dataset, task)",
        "task": "CASE WHEN dataset IS NOT NULL THEN task END",
        # layouts 5-7 stored one byte per token, in the same 1/16-nat steps
        "token_confidence": "CAST(token_confidence AS USMALLINT[])",
    },
    # layout 2 folded a node's kind into finish_reason ("root", "step", "revision:stop"): such shards read as layout 3
    "nodes": {
        "kind": "coalesce(kind, split_part(finish_reason, ':', 1))",
        "finish_reason": "CASE WHEN kind IS NOT NULL THEN finish_reason WHEN contains(finish_reason, ':') "
        "THEN split_part(finish_reason, ':', 2) END",
    },
}
"""Per table, columns whose stored form changed: the expression that reads every shard in the current form."""

KEYED_BY_QUESTIONS = ("samples", "nodes")
"""Tables whose rows carry their question's key (layout 7): a shard written before, whose rows lack it, reads it
from its run's questions table (`Store.connect` joins on (run_id, question_id) only while such a shard exists)."""
