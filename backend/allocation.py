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
  first time a question is sampled (later samples find it in the prefix cache), plus `max_tokens` of decode — so
  what the ledger charges afterwards is at most what was allotted.

`decide` is a pure function of the per-question state it is given; each decision is logged with that state, so
`replay` recomputes the allocation from the log and a test can check that it matches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betainc

STOP_RULES = ("beta", "supermajority")


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
    prefill_bound: float  # FLOPs of the prompt's prefill, an upper bound until the engine has counted it
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
    Round 0 gives every question `first_round` samples (in question order while the budget lasts)."""
    out: list[Decision] = []
    if round_ == 0:
        for s in states:
            give = min(policy.first_round, policy.max_samples - s.samples)
            c = cost(s, give)
            reason = "first_round" if give > 0 and c <= remaining else "out_of_budget"
            if reason == "out_of_budget":
                give, c = 0, 0.0
            remaining -= c
            out.append(Decision(s.question_id, 0, give, c, difficulty(s), 0.0, reason))
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
    # hand out by weight (hopeless last), one sample at a time per question in turns, while the budget lasts
    order = sorted(range(n), key=lambda i: (reasons[i] != "open", -weight[i], i))
    given = np.zeros(n, dtype=np.int64)
    spent = 0.0
    progress = True
    while progress:
        progress = False
        for i in order:
            if given[i] >= want[i]:
                continue
            c = cost(states[i], given[i] + 1) - cost(states[i], given[i])
            if spent + c > remaining:
                continue
            given[i] += 1
            spent += c
            progress = True
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


def replay(log: list[tuple[int, float, list[QuestionState]]], policy: Policy) -> list[Decision]:
    """Recompute every logged round's decisions from its logged inputs (round, remaining budget, states)."""
    return [d for round_, remaining, states in log for d in decide(states, round_, remaining, policy)]
