"""bench/serve.py's raw side: the engine calls a request made, recorded with the calls its callbacks made, are
replayed as the same calls (same requests, same nesting), so the raw engine answers exactly the served samples."""

from __future__ import annotations

from collections import Counter

from bench.serve import Recorder
from tests.unit.test_threaded_engine import RecordingTransport, req


def test_a_recorded_request_replays_as_the_same_calls_with_the_same_nesting():
    engine = RecordingTransport(n_parallel=3)
    recorder = Recorder(engine)
    judged = []

    def judge(ri, request, comps):  # a verifier judging each sample on its slot, as self-verification does
        [[c]] = engine.generate([req("judge " + comps[0].text)])
        judged.append(c.text)

    log: list = []
    recorder.local.log = log
    engine.generate([req(f"p{i}", affinity=i) for i in range(4)], judge)
    engine.generate([req("second call", n=2)])
    recorder.local.log = None
    engine.generate([req("not recorded")])  # outside a request: passes through unrecorded

    served = Counter(p for _, p in engine.sent if p != "not recorded")
    assert len(log) == 2 and sum(len(v) for v in log[0].follow_ups.values()) == 4 and judged
    engine.sent.clear()
    recorder.replay(log)
    assert Counter(p for _, p in engine.sent) == served  # every sample and judge again, nothing else
    slot_of = {p: s for s, p in engine.sent}
    assert all(slot_of[f"judge <p{i}>"] == slot_of[f"p{i}"] for i in range(4))  # judges on their sample's slot
