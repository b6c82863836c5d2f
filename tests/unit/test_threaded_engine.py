"""The slot-affine fan-out of the HTTP-shaped engines (backend/engines/threaded.py), on a recording transport."""

from __future__ import annotations

import threading

import pytest

from backend.engines.base import GenerationRequest, SamplingParams
from backend.engines.threaded import AffinityScheduler, ThreadedEngineMixin
from backend.errors import EngineError


class RecordingTransport(ThreadedEngineMixin):
    name = "recording"

    def __init__(self, n_parallel: int, together: int = 0):
        self.n_parallel = n_parallel
        # with `together`, each request waits until that many are in flight: a condition, not a race against a sleep
        self.barrier = threading.Barrier(together, timeout=60) if together else None
        self.sent: list[tuple[int, str]] = []  # (slot, prompt) in the order the transport saw them
        self.lock = threading.Lock()

    def _complete_one(self, body: dict, slot: int) -> dict:
        with self.lock:
            self.sent.append((slot, body["prompt"]))
        if self.barrier is not None:
            self.barrier.wait()
        if body["prompt"] == "boom":
            return {"error": "bad request"}
        usage = {"prompt_tokens": len(body["prompt"]), "completion_tokens": 1}
        return {"choices": [{"text": f"<{body['prompt']}>", "finish_reason": "stop"}], "usage": usage}


def req(prompt: str, affinity=None, n: int = 1) -> GenerationRequest:
    return GenerationRequest(prompt, SamplingParams(max_tokens=1, seed=1), n, affinity=affinity)


def test_a_group_runs_in_order_on_one_slot_while_slots_outnumber_groups_only_when_work_remains():
    engine = RecordingTransport(n_parallel=3, together=3)  # the slots move in step: none finds its group done early
    requests = [req(f"q{q}-{i}", affinity=q) for q in range(3) for i in range(4)]
    out = engine.generate(requests)
    assert [c[0].text for c in out] == [f"<{r.prompt}>" for r in requests]  # results in request order
    for q in range(3):
        mine = [(s, p) for s, p in engine.sent if p.startswith(f"q{q}-")]
        assert len({s for s, _ in mine}) == 1  # one slot per group (groups == slots: nobody needs to join)
        assert [p for _, p in mine] == [f"q{q}-{i}" for i in range(4)]  # in order


def test_idle_slots_join_the_largest_group_from_its_far_end():
    sched = AffinityScheduler([req(f"a{i}", affinity="a") for i in range(6)] + [req("b0", affinity="b")])
    first, second, third = [None, False], [None, False], [None, False]
    assert sched.next(first) == (0, 0) and first == ["a", False]  # largest group first
    assert sched.next(second) == (6, 0) and second == ["b", False]  # then an untaken group
    assert sched.next(third) == (5, 0) and third == ["a", True]  # nothing untaken: join "a" from its end
    assert sched.next(second) == (4, 0)  # "b" is done: join "a" from its end too
    assert sched.next(first) == (1, 0)


def test_a_nested_call_from_a_worker_runs_inline_on_that_workers_slot():
    engine = RecordingTransport(n_parallel=4)
    judged: dict[str, int] = {}

    def on_complete(ri, request, comps):
        [[judge]] = engine.generate([req("judge " + comps[0].text)])
        judged[request.prompt] = judge.prompt_tokens

    engine.generate([req(f"p{i}", affinity=i) for i in range(8)], on_complete)
    slot_of = {p: s for s, p in engine.sent}
    assert len(judged) == 8
    for i in range(8):
        assert slot_of[f"judge <p{i}>"] == slot_of[f"p{i}"]  # the judge went to the slot holding its prefix
    order = [p for s, p in engine.sent if s == slot_of["p0"]]
    assert order.index("judge <p0>") == order.index("p0") + 1  # right after it, nothing in between


def test_without_affinity_every_slot_shares_the_work_and_n_completions_get_their_own_seeds():
    engine = RecordingTransport(n_parallel=4, together=4)  # 4 requests in flight at once: 4 slots at work
    out = engine.generate([req("same", n=8)])
    assert len({s for s, _ in engine.sent}) == 4
    assert [c.seed for c in out[0]] == list(range(1, 9))


def test_an_engine_error_surfaces_and_should_stop_skips_the_rest():
    engine = RecordingTransport(n_parallel=2)
    with pytest.raises(EngineError, match="bad request"):
        engine.generate([req("ok"), req("boom")])
    engine = RecordingTransport(n_parallel=1)
    out = engine.generate([req(f"p{i}") for i in range(5)], should_stop=lambda: len(engine.sent) >= 2)
    assert sum(c[0] is not None for c in out) == 2


def test_concurrent_calls_share_the_slots_instead_of_pinning_to_the_same_ones():
    # two calls of two requests each, from two threads; the barrier holds each request until four are in flight,
    # so it passes only when both calls run at once, each request on its own slot
    engine = RecordingTransport(n_parallel=4, together=4)
    out: dict[str, list] = {}

    def call(name: str) -> None:
        out[name] = engine.generate([req(f"{name}{i}", affinity=i) for i in range(2)])

    threads = [threading.Thread(target=call, args=(name,)) for name in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in engine.sent) == [0, 1, 2, 3]
    assert [c[0].text for c in out["a"]] == ["<a0>", "<a1>"] and [c[0].text for c in out["b"]] == ["<b0>", "<b1>"]
    assert engine._slots().free == {0, 1, 2, 3}  # every slot given back
