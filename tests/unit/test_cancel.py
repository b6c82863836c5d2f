"""Cancelling a running run: the completions in flight are given up (their partial text is never stored), the
samples already finished are kept, the run is marked cancelled and the next model never starts."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest

from backend.config import ModelSpec, parse_spec
from backend.engines.base import GenerationRequest, SamplingParams
from backend.engines.threaded import GenerationAborted, ThreadedEngineMixin
from backend.execution.execute import RunCancelled, execute
from backend.execution.queue import cancel, progress
from backend.execution.sampling import PreparedRun
from store import Store
from tests.conftest import wait_until
from tests.fakes import FAKE_MODEL, GEN_ARCH, FakeTask


class HangingEngine(ThreadedEngineMixin):
    """A threaded engine whose prompts matching `hang` never finish on their own: they stay in flight until the
    caller's `should_stop` turns true, as a llama.cpp completion decodes until it is stopped. Others answer at once."""

    name = "hanging"
    arch = GEN_ARCH
    exact_token_counts = True

    def __init__(self, n_parallel: int, hang: str):
        self.n_parallel = n_parallel
        self.hang = re.compile(hang)
        self.in_flight = threading.Semaphore(0)  # released once per completion that starts hanging
        self.aborted: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text)

    def _complete_one(self, body: dict, slot: int) -> dict:
        usage = {"prompt_tokens": len(body["prompt"]), "completion_tokens": 9}
        return {"choices": [{"text": "Answer: 1", "finish_reason": "stop"}], "usage": usage}

    def _complete_abortable(self, body: dict, slot: int, should_stop) -> dict:
        if not self.hang.search(body["prompt"]):
            return self._complete_one(body, slot)
        self.in_flight.release()
        stopped = threading.Event()
        while not (should_stop is not None and should_stop()):
            stopped.wait(0.01)
        self.aborted.append(body["prompt"])
        raise GenerationAborted

    def close(self) -> None:
        pass


def _req(prompt: str) -> GenerationRequest:
    return GenerationRequest(prompt, SamplingParams(max_tokens=9, seed=1), affinity=prompt)


def test_a_stop_gives_up_the_completions_in_flight_and_keeps_the_finished_ones():
    engine = HangingEngine(n_parallel=4, hang="slow")
    stop = threading.Event()
    finished: list[str] = []

    def stop_when_both_hang() -> None:
        for _ in range(2):
            engine.in_flight.acquire()
        stop.set()

    threading.Thread(target=stop_when_both_hang, daemon=True).start()
    requests = [_req("fast 1"), _req("slow 1"), _req("fast 2"), _req("slow 2")]
    out = engine.generate(requests, on_complete=lambda ri, r, c: finished.append(r.prompt), should_stop=stop.is_set)
    assert sorted(finished) == ["fast 1", "fast 2"]  # no callback for a completion given up
    assert [o[0] is None for o in out] == [False, True, False, True]
    assert sorted(engine.aborted) == ["slow 1", "slow 2"]


def _two_model_run(questions: int) -> PreparedRun:
    task = FakeTask(questions)
    spec = parse_spec(
        dict(name="cancel-me", models=["scripted", "scripted-2"], task=dict(kind="humaneval"), samples_per_question=2)
    )
    models = [
        (ModelSpec(name="scripted"), FAKE_MODEL),
        (ModelSpec(name="scripted-2"), replace(FAKE_MODEL, name="scripted-2")),
    ]
    return PreparedRun(spec, spec.run_id(), task, task.questions(), models)


def test_a_cancel_stops_a_two_model_run_mid_completion_and_keeps_what_was_finished(tmp_path):
    prepared = _two_model_run(questions=3)
    store = Store.open(tmp_path / "store")
    engine = HangingEngine(n_parallel=3, hang=r"What is 2\?")  # the third question's samples never finish
    made: list[str] = []

    def factory(model, options):
        made.append(model.name)
        return engine

    outcome: dict = {}

    def run() -> None:
        try:
            execute(prepared, store, engine_factory=factory)
        except RunCancelled as e:
            outcome["cancelled"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    engine.in_flight.acquire(timeout=60)  # the third question's first sample is decoding
    wait_until(lambda: (p := progress(store, prepared.run_id)) and p.done == 4, 60, "the finished samples to land")
    cancel(store, prepared.run_id)
    worker.join(60)
    assert not worker.is_alive() and "cancelled" in outcome
    row = store.get_run(prepared.run_id)
    assert row["status"] == "cancelled"
    kept = store.query("SELECT model, question_id, completion FROM samples ORDER BY question_id, sample_idx")
    assert len(kept) == 4 and set(kept["question_id"]) == {"q0", "q1"}  # the one in flight is not stored
    assert set(kept["model"]) == {"scripted"} and made == ["scripted"]  # the second model never started
    assert engine.aborted and all("What is 2?" in p for p in engine.aborted)  # both its samples were in flight
    assert progress(store, prepared.run_id).done == 4


@pytest.mark.parametrize("stopped_by", ["cancel", "worker stop"])
def test_a_cancel_or_a_stop_reaches_a_run_between_heartbeats(tmp_path, stopped_by):
    """The run looks for a cancel between lease renewals, so a long heartbeat does not hold a cancel back."""
    prepared = _two_model_run(questions=1)
    store = Store.open(tmp_path / "store")
    engine = HangingEngine(n_parallel=1, hang="What is 0")
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            execute(prepared, store, engine_factory=lambda m, o: engine, heartbeat_s=3600, stop=stop)
        except BaseException as e:  # noqa: BLE001 - the test reads which
            errors.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    engine.in_flight.acquire(timeout=60)
    if stopped_by == "cancel":
        cancel(store, prepared.run_id)
    else:
        stop.set()
    worker.join(60)
    assert not worker.is_alive()
    expected = "cancelled" if stopped_by == "cancel" else "queued"  # a stopping worker queues its run again
    assert store.get_run(prepared.run_id)["status"] == expected and len(errors) == 1
