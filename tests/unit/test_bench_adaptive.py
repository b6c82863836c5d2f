"""bench/adaptive.py's replay on a pool where a question was drawn twice: the pool holds it as one question (its
key) with both draws' samples and padding on every other row. Each reordering must keep the allocator's view of a
question (its PoolQuestion) aligned cell by cell with the pool the votes are read from, and never draw padding."""

from dataclasses import replace

import numpy as np

from backend.execution.allocation import PoolQuestion
from backend.metrics.pools import pool_from_arrays
from bench.adaptive import _pool_rows, _reordered


def test_reorders_keep_the_allocator_and_the_pool_aligned_on_a_merged_question():
    valid = np.array([[True] * 4 + [False] * 4, [True] * 8])  # q1: a question the dataset drew twice
    answer_id = np.array([[0, 1, -1, 0, -1, -1, -1, -1], [2, 0, 1, -1, 2, 2, 0, 1]])
    pool = pool_from_arrays(answer_id == 0, answer_id, valid=valid, question_ids=["q0", "q1"])
    decode = np.where(valid, np.arange(16.0).reshape(2, 8) + 1, np.nan)
    pool = replace(pool, decode_flops=decode)
    first_draws = {  # what pool_questions gives: one question per id, the first draw's samples only
        qid: PoolQuestion(qid, ("x",) * 4, (1.0,) * 4, 10.0, 11.0, 5.0, 5.0) for qid in ("q0", "q1")
    }
    qs = _pool_rows(pool, first_draws)
    assert [len(q.answers) for q in qs] == [4, 8]
    assert qs[0].answers == (0, 1, None, 0) and qs[1].decode_flops == tuple(decode[1])
    assert qs[1].prefill_flops == 10.0  # priced as its first draw
    rng = np.random.default_rng(0)
    for _ in range(50):
        p, rq = _reordered(pool, qs, rng)
        assert (p.valid == valid).all()  # padding stays last: a prefix of n cells is n real samples
        for i, q in enumerate(rq):
            n = len(q.answers)
            codes = tuple(None if a < 0 else int(a) for a in p.answer_id[i, :n])
            assert q.answers == codes and q.decode_flops == tuple(p.decode_flops[i, :n])
            assert sorted(q.decode_flops) == sorted(decode[i, valid[i]])  # the same samples, reordered
