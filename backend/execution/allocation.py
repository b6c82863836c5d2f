"""Adaptive allocation of one total budget across a dataset's questions, while the run goes (the spec's
`adaptive:`): a small first round of samples per question, then rounds in which the next slice of budget goes
where it is predicted to pay.

Why these rules:
- **A settled question stops.** Two stopping rules over the answers drawn so far: a *supermajority* (the leading
  answer holds at least `supermajority` of the votes, its_hub's AdaptiveSelfConsistency) or the *Beta rule* of
  Adaptive-Consistency (Aggarwal et al. 2023): with v₁ votes for the leader and v₂ for the runner-up, the
  leader's share p of the two has posterior Beta(v₁+1, v₂+1), and the question stops once P(p > ½) ≥ `confidence`.
- **A question predicted hopeless gets little.** Its predicted difficulty is 1 − the leader's share of the votes
  (agreement is the strongest label-free signal of correctness); after `hopeless_after` samples a question whose
  agreement stays at or below `hopeless_agreement` gets one sample per round instead of a full share.
- **The rest get more, the least settled first.** Each open question's weight is the posterior probability that
  its leader is *not* yet the majority answer (1 − P(p > ½)); a round offers up to `round_samples` samples to each,
  in proportion to its weight, and hands them out one at a time in turns, by weight, while the budget lasts.
- **Never over budget.** Every sample is priced before it is given at its upper bound — the prompt's prefill the
  first time a question is sampled (later samples find it in the prefix cache; its tokens counted by the model's
  own tokenizer, what the engine then reports), plus `max_tokens` of decode — so what the ledger charges
  afterwards is at most what was allotted. The total in `samples` is that many of backend.pricing's "1 sample".

`decide` is a pure function of the per-question state it is given; each decision is logged with that state, so
`replay` recomputes the allocation from the log and a test can check that it matches."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import betainc

from backend.errors import SpecError
from backend.execution.sampling import model_arch, sample_model
from backend.ledger import decode_flops, prefill_flops
from backend.pricing import budget_flops, distinct_questions, prompt_tokens
from backend.tasks.base import ANSWER_SQL

if TYPE_CHECKING:
    import pandas as pd


def beta_settled_probability(leader_votes, runner_up_votes) -> np.ndarray:
    """P(p > ½) for p ~ Beta(leader + 1, runner-up + 1): the posterior probability that the leading answer is
    the majority of the two (Adaptive-Consistency's stopping statistic)."""
    a = np.asarray(leader_votes, dtype=np.float64) + 1.0
    b = np.asarray(runner_up_votes, dtype=np.float64) + 1.0
    return 1.0 - betainc(a, b, 0.5)


def supermajority_settled(leader_votes, votes, share: float, min_votes: int) -> np.ndarray:
    """A question is settled once it has `min_votes` votes and the leader holds at least `share` of them."""
    leader, n = np.asarray(leader_votes, dtype=np.float64), np.asarray(votes, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n >= min_votes) & (leader >= share * n)


@dataclass(frozen=True)
class Policy:
    """The spec's `adaptive:` knobs the allocator reads (backend/config.py checks them)."""

    stop: str = "beta"
    confidence: float = 0.95
    supermajority: float = 0.75
    first_round: int = 4
    round_samples: int = 4
    hopeless_after: int = 8
    hopeless_agreement: float = 0.25
    max_samples: int = 64  # per question: the spec's samples_per_question


@dataclass(frozen=True)
class QuestionState:
    """What the allocator knows of one question after a round (from the store)."""

    question_id: str
    samples: int  # drawn so far
    votes: int  # samples with an answer
    leader: int  # votes of the most frequent answer
    runner_up: int  # votes of the second most frequent (0 if none)
    prefill_bound: float  # FLOPs of the prompt's prefill (its tokens counted by the model's tokenizer)
    sample_bound: float  # FLOPs of one more sample's decode at max_tokens, an upper bound


@dataclass(frozen=True)
class Decision:
    question_id: str
    round: int
    samples: int  # given this round
    flops_bound: float  # what they may cost at most
    predicted_difficulty: float  # 1 - the leader's share of the votes (1 with no votes)
    settled_probability: float  # the stopping statistic (the Beta posterior, or the leader's share)
    reason: str  # first_round | open | hopeless | settled | at_cap | out_of_budget


def difficulty(state: QuestionState) -> float:
    return 1.0 if state.votes == 0 else 1.0 - state.leader / state.votes


def _settled(states: list[QuestionState], policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    leader = np.array([s.leader for s in states])
    runner = np.array([s.runner_up for s in states])
    votes = np.array([s.votes for s in states])
    if policy.stop == "beta":
        p = beta_settled_probability(leader, runner)
        return p, (votes > 0) & (p >= policy.confidence)
    share = np.divide(leader, votes, out=np.zeros(len(states)), where=votes > 0)
    return share, supermajority_settled(leader, votes, policy.supermajority, policy.first_round)


def cost(state: QuestionState, samples: int) -> float:
    """Upper bound of `samples` more samples of a question (its prefill only if it has none yet)."""
    if samples <= 0:
        return 0.0
    return (state.prefill_bound if state.samples == 0 else 0.0) + samples * state.sample_bound


def decide(states: list[QuestionState], round_: int, remaining: float, policy: Policy) -> list[Decision]:
    """The next round's samples per question, never more than `remaining` FLOPs in all at their upper bounds.
    Round 0 offers every question `first_round` samples, one per question in turns (question order), so a budget
    too tight for the whole first round still gives as many questions as it can a first sample."""
    out: list[Decision] = []
    if round_ == 0:
        want = np.array([min(policy.first_round, max(0, policy.max_samples - s.samples)) for s in states])
        given = _hand_out(states, want, range(len(states)), remaining)
        for s, g in zip(states, given):
            reason = "first_round" if g > 0 else "out_of_budget"
            out.append(Decision(s.question_id, 0, int(g), cost(s, int(g)), difficulty(s), 0.0, reason))
        return out
    stat, settled = _settled(states, policy)
    n = len(states)
    want = np.zeros(n, dtype=np.int64)
    reasons = ["open"] * n
    weight = np.zeros(n)
    for i, s in enumerate(states):
        room = policy.max_samples - s.samples
        if settled[i]:
            reasons[i] = "settled"
        elif room <= 0:
            reasons[i] = "at_cap"
        elif s.samples >= policy.hopeless_after and (1.0 - difficulty(s)) <= policy.hopeless_agreement:
            reasons[i], want[i], weight[i] = "hopeless", 1, 0.0
        else:
            open_p = 1.0 - stat[i] if policy.stop == "beta" else 1.0 - stat[i] / max(policy.supermajority, 1e-9)
            weight[i] = max(open_p, 1e-3)
    top = weight.max() if n else 0.0
    for i in range(n):
        if reasons[i] == "open":
            want[i] = max(1, math.ceil(policy.round_samples * weight[i] / top))
        want[i] = min(want[i], max(0, policy.max_samples - states[i].samples))
    # by weight (hopeless last)
    given = _hand_out(states, want, sorted(range(n), key=lambda i: (reasons[i] != "open", -weight[i], i)), remaining)
    for i, s in enumerate(states):
        reason = reasons[i]
        if reason in ("open", "hopeless") and given[i] == 0:
            reason = "out_of_budget"
        out.append(
            Decision(
                s.question_id, round_, int(given[i]), cost(s, int(given[i])), difficulty(s), float(stat[i]), reason
            )
        )
    return out


def _hand_out(states: list[QuestionState], want, order, remaining: float) -> np.ndarray:
    """Samples given per question: one at a time to each question in `order`, in turns, up to `want`, while the
    next one's upper bound still fits in `remaining`."""
    order = list(order)
    given = np.zeros(len(states), dtype=np.int64)
    spent = 0.0
    progress = True
    while progress:
        progress = False
        for i in order:
            if given[i] >= want[i]:
                continue
            c = cost(states[i], int(given[i]) + 1) - cost(states[i], int(given[i]))
            if spent + c > remaining:
                continue
            given[i] += 1
            spent += c
            progress = True
    return given


def replay(log: list[tuple[int, float, list[QuestionState]]], policy: Policy) -> list[Decision]:
    """Recompute every logged round's decisions from its logged inputs (round, remaining budget, states)."""
    return [d for round_, remaining, states in log for d in decide(states, round_, remaining, policy)]


# ---- running it: the worker's side (backend/execution/execute.py calls `sample_adaptively` for a spec with `adaptive:`) ----
STATE_SQL = f"""
WITH drawn AS (
    SELECT question_id, {ANSWER_SQL} AS answer, prompt_tokens
    FROM samples WHERE run_id = ? AND model = ?
), counts AS (
    SELECT question_id, answer, count(*) AS n FROM drawn WHERE answer IS NOT NULL GROUP BY 1, 2
), votes AS (
    SELECT *, row_number() OVER (PARTITION BY question_id ORDER BY n DESC, answer) AS r FROM counts
)
SELECT d.question_id, count(*) AS samples, max(d.prompt_tokens) AS prompt_tokens,
       coalesce(any_value(v.votes), 0) AS votes, coalesce(any_value(l.n), 0) AS leader,
       coalesce(any_value(s.n), 0) AS runner_up
FROM drawn d
LEFT JOIN (SELECT question_id, sum(n) AS votes FROM votes GROUP BY 1) v USING (question_id)
LEFT JOIN (SELECT question_id, n FROM votes WHERE r = 1) l USING (question_id)
LEFT JOIN (SELECT question_id, n FROM votes WHERE r = 2) s USING (question_id)
GROUP BY d.question_id
"""
"""Per question of one (run, model): samples drawn, the longest prompt, votes, the leader's and runner-up's votes."""

SPENT_SQL = """
SELECT coalesce(sum(p), 0) + coalesce(sum(d), 0) AS spent FROM (
    SELECT question_id, max(prefill_flops) AS p, sum(decode_flops) AS d
    FROM samples WHERE run_id = ? AND model = ? GROUP BY 1
)
"""
"""What the ledger has charged one (run, model) of an adaptive run: each prompt's prefill once (later samples find
it in the prefix cache) plus every decode. The budget the allocator keeps to is measured on this."""


def ledger_spent(store, run_id: str, model: str) -> float:
    return float(store.query(SPENT_SQL, [run_id, model])["spent"][0])


def policy_of(spec) -> Policy:
    a = spec.adaptive
    return Policy(
        stop=a.stop,
        confidence=a.confidence,
        supermajority=a.supermajority,
        first_round=a.first_round,
        round_samples=a.round_samples,
        hopeless_after=a.hopeless_after,
        hopeless_agreement=a.hopeless_agreement,
        max_samples=spec.samples_per_question,
    )


def question_prompt_tokens(prepared, model, count) -> dict[str, int]:
    """Each question's prompt tokens, counted by the model's tokenizer (`count`: the engine's `count_tokens`), which
    is what the engine then reports for its samples (backend.pricing)."""
    counts = prompt_tokens(model, prepared.task, prepared.questions, count)
    return {q.question_id: int(c) for q, c in zip(prepared.questions, counts)}


def total_flops(prepared, model, prompts: dict[str, int]) -> float:
    """The spec's total budget in FLOPs: in `samples`, each one the question set's "1 sample" (backend.pricing:
    the mean over its questions of one prefill + max_tokens of decode), with `prompts` from
    `question_prompt_tokens`."""
    spec, a = prepared.spec, prepared.spec.adaptive
    total = a.total_budget * (len(prepared.questions) if a.per_question else 1)
    counts = [prompts[q.question_id] for q in distinct_questions(prepared.questions)]
    return budget_flops(model_arch(model), [total], a.unit, counts, spec.max_tokens)[0]


def states_and_spent(prepared, store, model, prompts: dict[str, int]) -> tuple[list[QuestionState], float]:
    """Every question's state from the store, in the run's question order, and what the ledger has charged. A
    question not yet sampled is priced from its counted prompt tokens (`prompts`): its prefill once, then
    max_tokens of decode per sample."""
    arch, max_tokens = model_arch(model), prepared.spec.max_tokens
    df = store.query(STATE_SQL, [prepared.run_id, model.name]).set_index("question_id")
    states = []
    for q in prepared.questions:
        qid = q.question_id
        if qid in df.index:
            r = df.loc[qid]
            prompt = int(r["prompt_tokens"])
            states.append(
                QuestionState(
                    qid,
                    int(r["samples"]),
                    int(r["votes"]),
                    int(r["leader"]),
                    int(r["runner_up"]),
                    0.0,  # paid with its first sample
                    float(decode_flops(arch, prompt, max_tokens)),
                )
            )
        else:
            b = prompts[qid]
            states.append(
                QuestionState(qid, 0, 0, 0, 0, float(prefill_flops(arch, b)), float(decode_flops(arch, b, max_tokens)))
            )
    return states, ledger_spent(store, prepared.run_id, model.name)


def decisions_table(run_id: str, model: str, decisions: list[Decision], states: list[QuestionState], remaining: float):
    import pyarrow as pa

    from store.schema import ALLOCATIONS

    now = datetime.now(UTC)
    rows = [
        {
            "run_id": run_id,
            "model": model,
            "question_id": d.question_id,
            "round": d.round,
            "first_idx": s.samples,
            "samples": d.samples,
            "flops_bound": d.flops_bound,
            "predicted_difficulty": d.predicted_difficulty,
            "settled_probability": d.settled_probability,
            "reason": d.reason,
            "remaining_flops": remaining,
            "samples_before": s.samples,
            "votes": s.votes,
            "leader": s.leader,
            "runner_up": s.runner_up,
            "prefill_bound": s.prefill_bound,
            "sample_bound": s.sample_bound,
            "created_at": now,
        }
        for d, s in zip(decisions, states)
    ]
    return pa.Table.from_pylist(rows, schema=ALLOCATIONS)


def logged_rounds(store, run_id: str, model: str):
    """The (run, model)'s logged decisions, in round and question order (empty before its first round)."""
    return store.query(
        "SELECT * FROM allocations WHERE run_id = ? AND model = ? ORDER BY round, question_id", [run_id, model]
    )


def allocation_finished(prepared, store, model_name: str) -> bool:
    """The last logged round gave no sample (the budget is spent or every question stopped) and every sample of
    the rounds before it is stored."""
    log = logged_rounds(store, prepared.run_id, model_name)
    if log.empty or int(log.loc[log["round"] == log["round"].max(), "samples"].sum()) > 0:
        return False
    return len(store.existing_sample_keys(prepared.run_id, model_name)) >= int(log["samples"].sum())


def sample_adaptively(prepared, store, model, engine, done: int, progress, halt) -> int:
    """Sample one model of an adaptive run: finish the last logged round, then decide and sample rounds until
    one gives nothing. Decisions are stored before their samples are generated, so a killed worker's successor
    finishes the round it decided (the same keys, the same seeds) before it decides anything new."""
    policy = policy_of(prepared.spec)
    by_id = {q.question_id: q for q in prepared.questions}
    prompts = question_prompt_tokens(prepared, model, engine.count_tokens)
    total = total_flops(prepared, model, prompts)
    written = 0
    while not halt.is_set():
        log = logged_rounds(store, prepared.run_id, model.name)
        if not log.empty:
            last = log[log["round"] == log["round"].max()]
            existing = store.existing_sample_keys(prepared.run_id, model.name)
            keys = [
                (by_id[r.question_id], i)
                for r in last.itertuples()
                for i in range(r.first_idx, r.first_idx + r.samples)
                if (r.question_id, i) not in existing
            ]
            if keys:
                n = sample_model(prepared, store, model, engine, keys, done + written, progress, halt)
                written += n
                if halt.is_set():
                    break
            if int(last["samples"].sum()) == 0:
                break
        round_ = 0 if log.empty else int(log["round"].max()) + 1
        states, spent = states_and_spent(prepared, store, model, prompts)
        remaining = max(0.0, total - spent)
        decisions = decide(states, round_, remaining, policy)
        if round_ == 0 and not any(d.samples for d in decisions):
            cheapest = min(cost(s, 1) for s in states)
            whole = sum(cost(s, policy.first_round) for s in states)
            raise SpecError(
                "adaptive.total_budget",
                f"{total:.3g} FLOPs do not pay one sample of even one question",
                f"at least {cheapest:.3g} FLOPs; the whole first round ({policy.first_round} samples per question)"
                f" takes about {whole:.3g}",
            )
        store.write_shard(
            "allocations", prepared.run_id, decisions_table(prepared.run_id, model.name, decisions, states, remaining)
        )
    return written


@dataclass(frozen=True)
class AllocationSummary:
    """An adaptive run's allocation as the dashboard shows it."""

    decisions: pd.DataFrame  # the logged rows, in round and question order
    per_question: pd.DataFrame  # question_id, samples, rounds, last reason, predicted difficulty, settled stat
    total_flops: float  # the budget in FLOPs (what round 0 had left)
    spent_flops: float  # what the ledger charged: each prompt's prefill once, every decode
    rounds: int


def allocation_summary(store, run_id: str, model: str) -> AllocationSummary | None:
    """None when the run has no logged allocation (it is not adaptive, or has not started)."""
    log = logged_rounds(store, run_id, model)
    if log.empty:
        return None
    spent = ledger_spent(store, run_id, model)
    last = log.sort_values("round").groupby("question_id").tail(1).set_index("question_id")
    per_q = (
        log.groupby("question_id")
        .agg(samples=("samples", "sum"), rounds=("samples", lambda s: int((s > 0).sum())))
        .join(last[["reason", "predicted_difficulty", "settled_probability"]])
        .rename(columns={"reason": "last_reason"})
        .reset_index()
        .sort_values(["predicted_difficulty", "question_id"])
    )
    total = float(log.loc[log["round"] == 0, "remaining_flops"].iloc[0]) if (log["round"] == 0).any() else float("nan")
    return AllocationSummary(log, per_q, total, spent, int(log["round"].max()) + 1)


ADAPTIVE_SQL = "SELECT DISTINCT run_id FROM allocations WHERE list_contains(?, run_id) ORDER BY 1"
"""The one test of "is this run adaptive": it logged an allocation (rows written before the samples they give)."""


def adaptive_run_ids(con, run_ids) -> list[str]:
    """The adaptive runs among `run_ids` (ADAPTIVE_SQL), on a store connection."""
    return [r[0] for r in con.execute(ADAPTIVE_SQL, [list(run_ids)]).fetchall()]


def adaptive_runs(store) -> list[tuple[str, str]]:
    """(run_id, model) of every run with a logged allocation, newest first."""
    df = store.query(
        "SELECT run_id, model, max(created_at) AS t FROM allocations GROUP BY 1, 2 ORDER BY t DESC, run_id, model"
    )
    return list(zip(df["run_id"], df["model"]))


# ---- the same allocation replayed on a stored pool (what adaptive allocation would have drawn from it) ----------
@dataclass(frozen=True)
class PoolQuestion:
    """One question of a stored pool, its samples in sample_idx order: an adaptive run draws a prefix of them
    (the same seeds), so the allocation can be replayed on a pool without generating anything."""

    question_id: str
    answers: tuple  # normalised answers (None: no answer), in sample_idx order
    decode_flops: tuple  # each sample's decode FLOPs, in the same order
    prefill_flops: float  # the prompt's prefill, as the ledger charges it once
    prefill_bound: float  # what the allocator prices the prefill at before the first sample
    sample_bound_before: float  # one sample's decode bound before the question's first sample
    sample_bound: float  # the same once they are

    def spent(self, n: int) -> float:
        """What the ledger charges for the first `n` samples (SPENT_SQL's rule on one question)."""
        return self.prefill_flops + float(sum(self.decode_flops[:n])) if n else 0.0


def _state_of(q: PoolQuestion, n: int) -> QuestionState:
    votes: dict = {}
    for a in q.answers[:n]:
        if a is not None:
            votes[a] = votes.get(a, 0) + 1
    ranked = sorted(votes.values(), reverse=True) + [0, 0]
    if n == 0:
        return QuestionState(q.question_id, 0, 0, 0, 0, q.prefill_bound, q.sample_bound_before)
    return QuestionState(q.question_id, n, sum(votes.values()), ranked[0], ranked[1], 0.0, q.sample_bound)


def simulate(questions: list[PoolQuestion], total: float, policy: Policy) -> tuple[dict[str, int], list[Decision]]:
    """Replay adaptive allocation on stored pools: (samples drawn per question, every decision). The pools must
    hold at least `policy.max_samples` samples per question."""
    drawn = {q.question_id: 0 for q in questions}
    decisions: list[Decision] = []
    round_ = 0
    while True:
        states = [_state_of(q, drawn[q.question_id]) for q in questions]
        spent = sum(q.spent(drawn[q.question_id]) for q in questions)
        made = decide(states, round_, max(0.0, total - spent), policy)
        decisions += made
        if not any(d.samples for d in made):
            return drawn, decisions
        for d in made:
            drawn[d.question_id] += d.samples
        round_ += 1


def pool_questions(store, run_id: str, model, prepared) -> list[PoolQuestion]:
    """The stored pool of (run, model) as PoolQuestions, priced as the live allocator prices them (`prepared`: a
    prepared run over the same questions and max_tokens). A question's prompt tokens are its samples' stored count:
    the engine's tokenizer's, which the live allocator counts before sampling (`question_prompt_tokens`)."""
    arch, max_tokens = model_arch(model), prepared.spec.max_tokens
    df = store.query(
        f"SELECT question_id, {ANSWER_SQL} AS answer, decode_flops, prefill_flops, prompt_tokens FROM samples"
        " WHERE run_id = ? AND model = ? ORDER BY question_id, sample_idx",
        [run_id, model.name],
    )
    out = []
    for qid, g in df.groupby("question_id", sort=False):
        b = tokens = int(g["prompt_tokens"].max())
        out.append(
            PoolQuestion(
                qid,
                tuple(None if a is None or a != a else a for a in g["answer"]),
                tuple(float(x) for x in g["decode_flops"]),
                float(g["prefill_flops"].max()),
                float(prefill_flops(arch, b)),
                float(decode_flops(arch, b, max_tokens)),
                float(decode_flops(arch, tokens, max_tokens)),
            )
        )
    order = {q.question_id: i for i, q in enumerate(prepared.questions)}
    return sorted(out, key=lambda q: order[q.question_id])
