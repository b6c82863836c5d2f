"""The adaptive allocator's rules against their formulas: the Beta stopping statistic against scipy's Beta
distribution, the supermajority rule by hand, and the allocation itself: never more than the budget at its upper
bounds, settled questions stop, hopeless ones get one sample, and a logged run replays to the same decisions."""

import numpy as np
import pytest
from scipy import stats

from backend.execution.allocation import (
    Policy,
    QuestionState,
    beta_settled_probability,
    cost,
    decide,
    replay,
    supermajority_settled,
)


@pytest.mark.parametrize("leader, runner", [(0, 0), (1, 0), (3, 1), (5, 5), (12, 3), (40, 38), (7, 0)])
def test_beta_rule_is_the_posterior_probability_that_the_leader_is_the_majority(leader, runner):
    expected = stats.beta(leader + 1, runner + 1).sf(0.5)
    assert beta_settled_probability(leader, runner) == pytest.approx(expected, rel=1e-12)


def test_supermajority_needs_the_share_and_enough_votes():
    assert supermajority_settled([3, 3, 6, 2], [4, 4, 8, 2], 0.75, 4).tolist() == [True, True, True, False]
    assert supermajority_settled([2], [4], 0.75, 4).tolist() == [False]


def _state(i, samples, leader, runner, votes=None):
    return QuestionState(f"q{i}", samples, samples if votes is None else votes, leader, runner, 100.0, 10.0)


def test_first_round_gives_every_question_its_samples_when_the_budget_allows():
    states = [_state(i, 0, 0, 0) for i in range(5)]
    decisions = decide(states, 0, remaining=5 * (100 + 40), policy=Policy(first_round=4))
    assert [d.samples for d in decisions] == [4] * 5
    assert [d.reason for d in decisions] == ["first_round"] * 5
    assert sum(d.flops_bound for d in decisions) == 5 * 140


def test_a_tight_first_round_gives_first_samples_before_second_ones():
    """Turns: each question its first sample (prefill 100 + 10) before any its second (10), while they fit."""
    states = [_state(i, 0, 0, 0) for i in range(5)]
    decisions = decide(states, 0, remaining=470, policy=Policy(first_round=4))
    assert [d.samples for d in decisions] == [2, 2, 2, 1, 0]  # 4 × 110, then 3 × 10 = 470; q4's 110 never fits
    assert [d.reason for d in decisions] == ["first_round"] * 4 + ["out_of_budget"]
    assert sum(d.flops_bound for d in decisions) == 470


def test_settled_questions_stop_hopeless_ones_get_one_and_the_least_settled_get_most():
    policy = Policy(round_samples=4, hopeless_after=8, hopeless_agreement=0.25, max_samples=16)
    states = [
        _state(0, 4, 4, 0),  # unanimous: P(leader is the majority) = 1 - 0.5^5 = 0.97 >= 0.95: settled
        _state(1, 4, 2, 2),  # a tie: the most open
        _state(2, 4, 3, 1),  # leaning
        _state(3, 8, 2, 2),  # eight samples, leader share 0.25: hopeless
        _state(4, 16, 6, 5),  # at the cap
    ]
    by_q = {d.question_id: d for d in decide(states, 1, remaining=1e9, policy=policy)}
    assert by_q["q0"].reason == "settled" and by_q["q0"].samples == 0
    assert by_q["q1"].reason == "open" and by_q["q1"].samples == 4
    assert by_q["q2"].reason == "open" and 1 <= by_q["q2"].samples < 4
    assert by_q["q3"].reason == "hopeless" and by_q["q3"].samples == 1
    assert by_q["q4"].reason == "at_cap" and by_q["q4"].samples == 0
    assert by_q["q0"].settled_probability == pytest.approx(1 - 0.5**5)


@pytest.mark.parametrize("seed", range(5))
def test_a_round_never_allots_more_than_the_remaining_budget(seed):
    rng = np.random.default_rng(seed)
    policy = Policy(round_samples=6, max_samples=20)
    states = []
    for i in range(30):
        n = int(rng.integers(0, 20))
        leader = int(rng.integers(0, n + 1))
        runner = int(rng.integers(0, n - leader + 1))
        states.append(
            QuestionState(f"q{i}", n, n, leader, runner, float(rng.uniform(50, 500)), float(rng.uniform(5, 50)))
        )
    for remaining in (0.0, 30.0, 500.0, 5_000.0, 1e9):
        decisions = decide(states, 2, remaining, policy)
        assert sum(d.flops_bound for d in decisions) <= remaining
        for d, s in zip(decisions, states):
            assert d.flops_bound == cost(s, d.samples) and s.samples + d.samples <= policy.max_samples


def test_supermajority_rule_stops_on_the_share():
    policy = Policy(stop="supermajority", supermajority=0.75, first_round=4)
    d = decide([_state(0, 4, 3, 1), _state(1, 4, 2, 1)], 1, 1e9, policy)
    assert [x.reason for x in d] == ["settled", "open"] and d[0].settled_probability == 0.75


def test_a_logged_run_replays_to_the_same_allocation():
    policy = Policy(round_samples=3, max_samples=12)
    rng = np.random.default_rng(9)
    states = [QuestionState(f"q{i}", 0, 0, 0, 0, 100.0, 10.0) for i in range(6)]
    remaining, log, decided = 2_000.0, [], []
    for round_ in range(5):  # a run: decide, "sample", update the state the next round sees
        log.append((round_, remaining, list(states)))
        decisions = decide(states, round_, remaining, policy)
        decided += decisions
        remaining -= sum(d.flops_bound for d in decisions)
        new = []
        for s, d in zip(states, decisions):
            leader = s.leader + int(rng.integers(0, d.samples + 1))
            new.append(
                QuestionState(s.question_id, s.samples + d.samples, s.samples + d.samples, leader, 0, 100.0, 10.0)
            )
        states = new
    assert replay(log, policy) == decided
    assert remaining >= 0
