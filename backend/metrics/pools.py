"""Sample pools as dense arrays: the input of every pool metric.

"Generate once, analyse many": a sampling run stores N samples per question, and every curve for k <= N is
computed from that pool. One SQL query pulls a selection's sample and score rows out of the store; numpy
numbers questions and sample positions and codes answers by sorting (no per-sample loop), then scatters the
rows into (questions × samples) arrays. Pools may be ragged (a question with fewer samples): `valid` marks the real cells and `n` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backend.errors import AdaptiveRunError
from backend.metrics.confidence import trace_confidence
from backend.tasks.base import ANSWER_SQL

PATH_SQL = f"CASE WHEN completion IS NULL THEN hash(run_id, sample_idx) ELSE hash(completion, {ANSWER_SQL}) END"
"""A sample's reasoning-path identity: a 64-bit hash of its completion text as generated (RPC's reference code,
compute_rpc.py, keys paths by the completion string itself) and, so that one path never holds two answers, of its
normalised answer; a sample without a stored completion is a path of its own."""


@dataclass(frozen=True)
class Pool:
    """One model's samples for a set of questions, as (Q, N) arrays; cells with valid=False are padding."""

    question_ids: np.ndarray  # (Q,) str: the questions' labels, unique (question_labels)
    datasets: np.ndarray  # (Q,) str
    valid: np.ndarray  # (Q, N) bool
    correct: np.ndarray  # (Q, N) bool, False on padding
    answer_id: np.ndarray  # (Q, N) int32: code of the normalised answer within its question, -1 = no answer
    prompt_tokens: np.ndarray  # (Q, N) float, 0 on padding
    cached_prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    prefill_flops: np.ndarray  # (Q, N) float, NaN where not recorded
    decode_flops: np.ndarray
    flops: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # verifier -> (Q, N) float, NaN if missing
    model: str = ""
    confidence: np.ndarray | None = None  # (Q, N) trace confidence (metrics/confidence.py), NaN where not stored
    logprob_mean: np.ndarray | None = None  # (Q, N) mean token log-probability, NaN where not stored
    # (Q, N) int32: code of the sample's reasoning path (its completion text) within its question, -1 on padding;
    # None: every sample its own path
    path_id: np.ndarray | None = None
    question_keys: np.ndarray | None = None  # (Q,) str: the questions' identities (store/keys.question_key)

    @property
    def keys(self) -> np.ndarray:
        """(Q,) what identifies each question across runs: its key, or its label in a pool built from arrays."""
        return self.question_ids if self.question_keys is None else self.question_keys

    @property
    def n(self) -> np.ndarray:
        """Samples per question."""
        return self.valid.sum(axis=1)

    @property
    def n_correct(self) -> np.ndarray:
        return (self.correct & self.valid).sum(axis=1)

    @property
    def n_questions(self) -> int:
        return int(self.valid.shape[0])

    def score(self, verifier: str) -> np.ndarray:
        """The (Q, N) scores of one verifier; ValueError listing the loaded ones."""
        try:
            return self.scores[verifier]
        except KeyError:
            known = ", ".join(sorted(self.scores)) or "none loaded"
            raise ValueError(f"verifier {verifier!r} is not in this pool; allowed: {known}") from None

    def subset(self, questions) -> Pool:
        """The pool restricted to some questions (bool mask or indices)."""
        from backend.metrics.curve import check_questions_mask

        m = check_questions_mask(questions, self.n_questions)
        return Pool(
            question_ids=self.question_ids[m],
            datasets=self.datasets[m],
            valid=self.valid[m],
            correct=self.correct[m],
            answer_id=self.answer_id[m],
            scores={k: v[m] for k, v in self.scores.items()},
            prompt_tokens=self.prompt_tokens[m],
            cached_prompt_tokens=self.cached_prompt_tokens[m],
            completion_tokens=self.completion_tokens[m],
            prefill_flops=self.prefill_flops[m],
            decode_flops=self.decode_flops[m],
            flops=self.flops[m],
            model=self.model,
            confidence=None if self.confidence is None else self.confidence[m],
            logprob_mean=None if self.logprob_mean is None else self.logprob_mean[m],
            path_id=None if self.path_id is None else self.path_id[m],
            question_keys=None if self.question_keys is None else self.question_keys[m],
        )


def pool_from_arrays(
    correct,
    answer_id=None,
    scores: dict | None = None,
    *,
    valid=None,
    question_ids=None,
    completion_tokens=None,
    prompt_tokens=None,
    confidence=None,
    logprob_mean=None,
    path_id=None,
) -> Pool:
    """Build a Pool from plain (Q, N) arrays (tests, synthetic data). answer_id defaults to the correct flag;
    path_id (equal codes within a question: the same completion) defaults to every sample its own path."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError(f"correct must be a (questions, samples) array, got shape {correct.shape}")
    q, n = correct.shape
    valid = np.ones((q, n), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if answer_id is None:
        answer_id = np.where(correct, 0, 1)
    answer_id = np.where(valid, np.asarray(answer_id), -1).astype(np.int32)
    scores = {k: np.where(valid, np.asarray(v, dtype=np.float64), np.nan) for k, v in (scores or {}).items()}
    for name, arr in scores.items():
        if arr.shape != (q, n):
            raise ValueError(f"scores[{name!r}] has shape {arr.shape}; expected {(q, n)}")
    ids = np.asarray([f"q{i}" for i in range(q)] if question_ids is None else question_ids, dtype=object)
    zeros = np.zeros((q, n))
    return Pool(
        question_ids=ids,
        datasets=np.full(q, "", dtype=object),
        valid=valid,
        correct=correct & valid,
        answer_id=answer_id,
        scores=scores,
        prompt_tokens=zeros if prompt_tokens is None else np.asarray(prompt_tokens, dtype=np.float64),
        cached_prompt_tokens=zeros,
        completion_tokens=zeros if completion_tokens is None else np.asarray(completion_tokens, dtype=np.float64),
        prefill_flops=np.full((q, n), np.nan),
        decode_flops=np.full((q, n), np.nan),
        flops=np.full((q, n), np.nan),
        confidence=None if confidence is None else np.where(valid, np.asarray(confidence, dtype=np.float64), np.nan),
        logprob_mean=None
        if logprob_mean is None
        else np.where(valid, np.asarray(logprob_mean, dtype=np.float64), np.nan),
        path_id=None if path_id is None else np.where(valid, np.asarray(path_id), -1).astype(np.int32),
    )


KEY_OR_LABEL_SQL = "coalesce(question_key, '~' || coalesce(dataset, '') || '/' || question_id)"
"""A sample's question identity: its key; a row without one (no key stored, no questions row to take it from:
hand-made stores) falls back to its dataset and id, the identity before keys existed."""

LABEL_KEY_CHARS = 6

# The Samples page's filters: one constant query, every value a parameter; an empty filter is NULL and matches all.
# The text filter is a literal, case-insensitive substring (`contains`, not LIKE: a typed % or _ is a character).
SAMPLES_SQL = f"""
SELECT run_id, model, dataset, question_id, sample_idx, strategy, answer, correct, score,
       completion_tokens, finish_reason, prompt, completion, {KEY_OR_LABEL_SQL} AS question_key
FROM samples
WHERE ($1::VARCHAR IS NULL OR run_id = $1)
  AND ($2::VARCHAR IS NULL OR model = $2)
  AND ($3::VARCHAR IS NULL OR {KEY_OR_LABEL_SQL} = $3)
  AND ($4::VARCHAR IS NULL OR coalesce(correct, false) = ($4 = 'correct'))
  AND ($5::VARCHAR IS NULL OR contains(lower(coalesce(completion, '')), lower($5))
                           OR contains(lower(coalesce(answer, '')), lower($5)))
ORDER BY run_id, model, question_id, sample_idx
LIMIT $6"""

QUESTION_IDS_SQL = f"""
SELECT DISTINCT question_id, {KEY_OR_LABEL_SQL} AS question_key FROM samples
WHERE ($1::VARCHAR IS NULL OR run_id = $1) AND ($2::VARCHAR IS NULL OR model = $2)
ORDER BY 1, 2 LIMIT 5000"""


def question_labels(ids, keys) -> np.ndarray:
    """(Q,) labels of questions given their ids and keys: the id, and where two questions of one selection share an
    id (two runs with other knobs), the id plus a short key suffix, `basic_arithmetic/0/0 ·1a2b3c`."""
    ids_arr = np.asarray(list(ids), dtype=object)
    uniq, counts = np.unique(ids_arr.astype(str), return_counts=True) if len(ids_arr) else (np.array([]), [])
    clash = set(uniq[np.asarray(counts) > 1].tolist()) if len(ids_arr) else set()
    if not clash:
        return ids_arr
    return np.asarray(
        [f"{i} ·{str(k).lstrip('~')[:LABEL_KEY_CHARS]}" if i in clash else i for i, k in zip(ids_arr, keys)],
        dtype=object,
    )


def refuse_adaptive(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> None:
    """Pool metrics average random k-subsets of a question's samples, which assumes they are exchangeable; an
    adaptive run's are not (a question stops once its votes agree: after 4 unanimous votes majority@k is 0 or 1),
    so its curves would be biased, silently. Refuse, naming the run and where its result is read."""
    from backend.execution.allocation import adaptive_run_ids

    adaptive = adaptive_run_ids(con, run_ids)
    if adaptive:
        raise AdaptiveRunError(adaptive)


def list_verifiers(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], model: str) -> list[str]:
    """Verifier names that scored any sample of the selection."""
    rows = con.execute(
        "SELECT DISTINCT verifier FROM scores WHERE list_contains(?, run_id) AND model = ? ORDER BY verifier",
        [list(run_ids), model],
    ).fetchall()
    return [r[0] for r in rows]


def _dense_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """Integer codes of a string column in sorted order of its distinct values (NULL -> -1)."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    values = encoded.dictionary.to_pylist()
    order = np.argsort(np.asarray(values, dtype=object)) if values else np.zeros(0, np.int64)
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(encoded.indices.is_null())
    codes = np.full(len(idx), -1, dtype=np.int64)
    codes[valid] = rank[idx[valid].astype(np.int64)]
    return codes, sorted(values)


def _rank_within(group: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """0-based position of each row within its group when rows are ordered by keys (row_number)."""
    order = np.lexsort((*keys[::-1], group))
    sorted_group = group[order]
    first = np.searchsorted(sorted_group, sorted_group, side="left")
    out = np.empty(len(group), dtype=np.int64)
    out[order] = np.arange(len(group)) - first
    return out


def _dense_rank_within(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """0-based dense rank of value within its group (value -1 stays -1)."""
    out = np.full(len(group), -1, dtype=np.int64)
    has = value >= 0
    if not has.any():
        return out
    width = int(value.max()) + 1
    uniq, inverse = np.unique(group[has] * width + value[has], return_inverse=True)
    uniq_group = uniq // width
    first = np.searchsorted(uniq_group, uniq_group, side="left")
    out[has] = (np.arange(len(uniq)) - first)[inverse.ravel()]
    return out


def _path_codes(q: np.ndarray, path_hash: np.ndarray) -> np.ndarray:
    """Dense code of each row's reasoning path within its question (rows of one question with equal `PATH_SQL`
    hashes share one), in an order of no meaning. The question number and the hash's high bits are packed into one
    uint64 key, so one np.unique numbers every question's paths (a question keeps 64 - bits(question count) bits
    of the hash: two paths of one question collide with odds ~ paths² / 2^(65 - those bits))."""
    shift = np.uint64(64 - max(1, int(q.max()).bit_length()))
    key = (q.astype(np.uint64) << shift) | (path_hash.astype(np.uint64) >> (np.uint64(64) - shift))
    uniq, inverse = np.unique(key, return_inverse=True)
    question = uniq >> shift
    return (np.arange(len(uniq)) - np.searchsorted(question, question, side="left"))[inverse.ravel()]


def _questions_in_label_order(samples: pa.Table, qid_code: np.ndarray, q_width: int) -> np.ndarray:
    """Each row's question number: one per key (a question is its key, whatever its label), numbered in the
    sorted order of their (dataset, id) labels, then keys — so a selection without clashing ids keeps the order
    it always had."""
    key_code, key_values = _dense_codes(samples.column("question_key"))
    dataset_code, _ = _dense_codes(samples.column("dataset"))
    label = (dataset_code + 1) * q_width + qid_code
    first_label = np.full(len(key_values), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_label, key_code, label)
    rank = np.empty(len(key_values), dtype=np.int64)
    rank[np.lexsort((np.arange(len(key_values)), first_label))] = np.arange(len(key_values))
    return rank[key_code]


def _read_tables(con, runs, model, dataset, strategy, names, confidence):
    """The selection's sample rows, its score rows (None without verifiers) and, for rows of shards written before
    layout 10, their token confidences (None when every row has its trace confidence stored)."""
    where = ["list_contains($runs, run_id)", "model = $model"]
    params: dict = {"runs": runs, "model": model}
    if dataset is not None:
        where.append("dataset = $dataset")
        params["dataset"] = dataset
    if strategy is not None:
        where.append("strategy = $strategy")
        params["strategy"] = strategy
    sample_sql = f"""
    SELECT run_id, question_id, dataset, sample_idx, {KEY_OR_LABEL_SQL} AS question_key,
           coalesce(correct, false) AS correct,
           {ANSWER_SQL} AS answer,
           coalesce(prompt_tokens, 0)::DOUBLE AS prompt_tokens,
           coalesce(cached_prompt_tokens, 0)::DOUBLE AS cached_prompt_tokens,
           coalesce(completion_tokens, 0)::DOUBLE AS completion_tokens,
           coalesce(prefill_flops, 'NaN'::DOUBLE) AS prefill_flops,
           coalesce(decode_flops, 'NaN'::DOUBLE) AS decode_flops,
           coalesce(flops, 'NaN'::DOUBLE) AS flops,
           coalesce(logprob_mean, 'NaN'::DOUBLE) AS logprob_mean,
           {"trace_confidence" if confidence else "NULL"}::DOUBLE AS trace_confidence,
           {PATH_SQL} AS path
    FROM samples WHERE {" AND ".join(where)}
    """
    samples = con.sql(sample_sql, params=params).to_arrow_table()
    if samples.num_rows == 0:
        sel = f"run_ids={runs}, model={model!r}" + (f", dataset={dataset!r}" if dataset else "")
        raise ValueError(f"no samples match {sel}; check the run ids, model and dataset")
    scored = None
    if names:
        scored = con.sql(
            """SELECT list_position($vnames, verifier)::INTEGER AS slot, run_id, question_id, sample_idx,
                      score::DOUBLE AS score
               FROM scores
               WHERE list_contains($runs, run_id) AND model = $model AND list_contains($vnames, verifier)""",
            params={"runs": runs, "model": model, "vnames": names},
        ).to_arrow_table()
    unstored = None
    if confidence and samples.column("trace_confidence").null_count:
        # rows of shards written before layout 10 carry no trace confidence: computed from their token confidences,
        # read for those rows alone (row groups without such rows are skipped)
        unstored = con.sql(
            f"""SELECT run_id, question_id, sample_idx, token_confidence FROM samples
                WHERE {" AND ".join(where)} AND trace_confidence IS NULL AND token_confidence IS NOT NULL""",
            params=params,
        ).to_arrow_table()
    return samples, scored, unstored


def load_pool(
    con: duckdb.DuckDBPyConnection,
    run_ids: str | Sequence[str],
    model: str,
    *,
    dataset: str | None = None,
    strategy: str | None = None,
    verifiers: str | Sequence[str] | None = None,
    confidence: bool = True,
) -> Pool:
    """Load one model's sample pools from the store's `samples` and `scores` views: one column scan each.
    `confidence=False` reads no trace confidence (`confidence` is None, as for a pool written without them). Each
    trace's confidence is stored beside its token confidences (layout 10); for rows of older shards it is computed
    from their token confidences, read for those rows alone (the list column is most of a pool's bytes).

    Questions are identified by their key (a question is its content: ids are positions within a run), numbered
    in the sorted order of their labels (`question_labels`); samples of several runs of the same question are
    concatenated in (run_id, sample_idx) order. Adaptive runs are refused (`refuse_adaptive`). Answers are
    compared after trimming and collapsing whitespace; a NULL or empty answer gets code -1 (it can never win a vote); codes follow the
    sorted order of a question's distinct answers (SQL dense_rank semantics). `verifiers=None` loads every
    verifier that scored the selection; a string or list loads just those.

    The numbering — question dense_rank, per-question row_number, answer dense_rank — is done by sorting
    integer codes in numpy: on 2 cores DuckDB window functions (or a join of the two tables) cost ~0.4 s each
    per million rows, two plain scans plus a numpy lexsort about 0.5 s in all."""
    runs = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    if not runs:
        raise ValueError("run_ids is empty; give at least one run id")
    refuse_adaptive(con, runs)
    if verifiers is None:
        names = list_verifiers(con, runs, model)
    else:
        names = [verifiers] if isinstance(verifiers, str) else list(verifiers)
    samples, scored, unstored = _read_tables(con, runs, model, dataset, strategy, names, confidence)
    n_rows = samples.num_rows
    n_scored = 0 if scored is None else scored.num_rows
    col = lambda name: samples.column(name).to_numpy(zero_copy_only=False)  # noqa: E731
    others = [t for t in (scored, unstored) if t is not None]

    def codes_over_all(name):  # one code space for a key column of the samples, the score rows and unstored rows
        parts = samples.column(name).chunks + [c for t in others for c in t.column(name).chunks]
        return _dense_codes(pa.chunked_array(parts, type=samples.schema.field(name).type))[0]

    run_code, qid_code = codes_over_all("run_id"), codes_over_all("question_id")
    q_width = int(qid_code.max()) + 1
    q = _questions_in_label_order(samples, qid_code[:n_rows], q_width)
    sample_idx = col("sample_idx").astype(np.int64)
    i = _rank_within(q, run_code[:n_rows], sample_idx)
    answer, _ = _dense_codes(samples.column("answer"))
    a = _dense_rank_within(q, answer)
    path = _path_codes(q, col("path"))
    n_q, n_max = int(q.max()) + 1, int(i.max()) + 1
    cell = q * n_max + i

    def dense(values, fill, dtype):
        out = np.full(n_q * n_max, fill, dtype=dtype)
        out[cell] = values
        return out.reshape(n_q, n_max)

    # score rows (and unstored rows) find their sample's cell through (run_id, question_id, sample_idx)
    other_idx = [t.column("sample_idx").to_numpy(zero_copy_only=False).astype(np.int64) for t in others]
    idx_width = int(max([sample_idx.max(), *(x.max() for x in other_idx if len(x))])) + 1
    n_runs = int(run_code.max()) + 1
    key = lambda r, qq, ii: (qq * n_runs + r) * idx_width + ii  # noqa: E731
    lookup = np.full(q_width * n_runs * idx_width, -1, dtype=np.int64) if others else None
    if lookup is not None:
        lookup[key(run_code[:n_rows], qid_code[:n_rows], sample_idx)] = cell
    scores = {}
    if scored is not None and lookup is not None:
        run_s, qid_s = run_code[n_rows : n_rows + n_scored], qid_code[n_rows : n_rows + n_scored]
        score_idx = other_idx[0]
        target = lookup[key(run_s, qid_s, score_idx)]
        score_slot = scored.column("slot").to_numpy(zero_copy_only=False)
        score_val = scored.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
        for j, name in enumerate(names):  # one pass per verifier, vectorised over its rows
            mine = (score_slot == j + 1) & (target >= 0)
            flat = np.full(n_q * n_max, np.nan)
            flat[target[mine]] = score_val[mine]
            scores[name] = flat.reshape(n_q, n_max)
    trace = None
    if confidence:
        trace = dense(col("trace_confidence").astype(np.float64), np.nan, np.float64)  # NULL reads as NaN
        if unstored is not None and unstored.num_rows and lookup is not None:
            at = lookup[key(run_code[n_rows + n_scored :], qid_code[n_rows + n_scored :], other_idx[-1])]
            trace.reshape(-1)[at] = trace_confidence(unstored.column("token_confidence"))
    valid = dense(True, False, bool)
    first_rows = np.flatnonzero(i == 0)
    first_rows = first_rows[np.argsort(q[first_rows])]
    question_keys = np.asarray(samples.column("question_key").take(pa.array(first_rows)).to_pylist(), dtype=object)
    return Pool(
        question_ids=question_labels(
            samples.column("question_id").take(pa.array(first_rows)).to_pylist(), question_keys
        ),
        question_keys=question_keys,
        datasets=np.asarray(samples.column("dataset").take(pa.array(first_rows)).to_pylist(), dtype=object),
        valid=valid,
        correct=dense(col("correct").astype(bool), False, bool),
        answer_id=dense(a.astype(np.int32), -1, np.int32),
        scores=scores,
        prompt_tokens=dense(col("prompt_tokens"), 0.0, np.float64),
        cached_prompt_tokens=dense(col("cached_prompt_tokens"), 0.0, np.float64),
        completion_tokens=dense(col("completion_tokens"), 0.0, np.float64),
        prefill_flops=dense(col("prefill_flops"), np.nan, np.float64),
        decode_flops=dense(col("decode_flops"), np.nan, np.float64),
        flops=dense(col("flops"), np.nan, np.float64),
        model=model,
        confidence=trace,
        logprob_mean=dense(col("logprob_mean"), np.nan, np.float64),
        path_id=dense(path.astype(np.int32), -1, np.int32),
    )
