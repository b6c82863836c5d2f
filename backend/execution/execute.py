"""The worker: turns a validated run spec into samples in the store.

Order of work is what makes runs safe: (1) everything that can fail on bad input — models, task suite,
questions, prompts — is resolved before the store is touched; (2) the run is registered and claimed; (3) for each
model, only the (question, sample) keys missing from the store are generated, all submitted to the engine at
once (continuous batching), graded as they finish and appended as immutable shards every `flush_s` seconds;
an adaptive spec's keys are decided round by round under its total budget instead (backend/execution/allocation.py);
(4) the questions whose scores or searches are missing are analysed (backend/execution/analysis.py). A SIGKILL loses at
most the unflushed tail, which the next run of the same spec regenerates with the same seeds."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from backend.engines import create_engine, with_parallelism
from backend.engines.base import Engine
from backend.errors import TtcError
from backend.execution.allocation import allocation_finished, sample_adaptively
from backend.execution.analysis import analyse, questions_left
from backend.execution.sampling import PreparedRun, sample_model
from backend.models.registry import ResolvedModel
from backend.tasks import Question
from store import Store
from store.leases import LeaseLost, process_holder
from store.maintenance import compact_run, purge_replaced
from store.rows import questions_table

CANCEL_POLL_S = 0.5  # how often a run looks for a cancel between heartbeats: a cancel stops it within seconds


class RunCancelled(TtcError):
    pass


class RunInterrupted(TtcError):
    """The worker was asked to stop mid-run (`ttc worker stop`, Ctrl-C): the run goes back to the queue, and the
    next worker that claims it generates only the samples still missing."""


def _why_stopped(run_id: str, cancel_requested: threading.Event, lease) -> TtcError:
    if lease.lost.is_set():
        return LeaseLost(f"run {run_id}: another worker holds it now (this one's lease expired); stopped")
    if cancel_requested.is_set():
        return RunCancelled(f"run {run_id} was cancelled")
    return RunInterrupted(f"run {run_id} was interrupted (its worker is stopping); it is queued again to resume")


def execute(
    prepared: PreparedRun,
    store: Store,
    progress: Callable[[int, int], None] | None = None,
    engine_factory: Callable[[ResolvedModel, object], Engine] | None = None,
    heartbeat_s: float = 2.0,
    stop: threading.Event | None = None,
    holder: str | None = None,
    ray_address: str | None = None,
) -> dict:
    """Generate every missing sample of the run. `progress(done, total)` is called as shards land. When `stop` is
    set (the worker is stopping) generation ends within CANCEL_POLL_S, what was generated is kept, and the run is
    queued again instead of being marked cancelled or failed, so stopping a worker never loses a run. A cancel is
    seen as soon: the engine gives up the completions in flight (their partial text is discarded), the samples
    already finished are kept, and the run is marked cancelled.

    The run is held by a lease for `holder` (a worker's id; `ttc run` makes one) renewed at every heartbeat; every
    shard is written under it (store/leases.py). A worker whose lease was taken over stops and leaves the run's
    state to its new holder.

    With `engine.replicas` other than 1, or a Ray cluster's `ray_address` (`ttc worker --ray`), the samples, their
    scores and the searches are made by engine replicas on Ray, shards of questions each (backend/execution/fanout.py)."""
    spec, run_id = prepared.spec, prepared.run_id
    total = prepared.total_samples
    holder = holder or process_holder()
    lease = store.claim_run(run_id, spec.name, spec.model_dump(mode="json"), total, holder)
    halt = threading.Event()  # stop generating: a cancel request, the worker is stopping, or the lease is lost
    cancel_requested = threading.Event()
    stop_beat = _start_heartbeat(
        lease, heartbeat_s, stop, halt, cancel_requested, asked=lambda: store.get_run(run_id) or {}
    )
    generated = 0
    try:
        with store.fenced(run_id, lease.check):
            done = _register_questions(prepared, store)
            if progress:
                progress(done, total)
            for model_index, (_model_spec, model) in enumerate(prepared.models):
                written = _run_model(
                    prepared,
                    store,
                    model_index,
                    model,
                    _ModelRun(done, progress, halt, lambda: _why_stopped(run_id, cancel_requested, lease)),
                    lease,
                    engine_factory,
                    ray_address,
                )
                generated += written
                done += written
            store.finish_run(run_id, "done", holder=holder)
        compact_finished(store, run_id)
        return {"run_id": run_id, "generated": generated, "total": total}
    except LeaseLost:  # the run is another worker's now (or will be, once the lease expires): its state is not ours
        raise
    except RunCancelled:
        store.finish_run(run_id, "cancelled", holder=holder)
        raise
    except RunInterrupted:
        store.requeue_run(run_id, holder)
        raise
    except BaseException as e:
        reason = str(e) if isinstance(e, TtcError) else f"{type(e).__name__}: {e}"
        try:
            store.finish_run(run_id, "failed", reason[:2000], holder=holder)
        except Exception as recording:  # noqa: BLE001 - e.g. a full disk refuses the catalog too: keep e's message
            print(f"run {run_id}: could not record the failure in the catalog: {recording}", file=sys.stderr)
        raise
    finally:
        stop_beat.set()


def _start_heartbeat(
    lease,
    heartbeat_s: float,
    stop: threading.Event | None,
    halt: threading.Event,
    cancel_requested: threading.Event,
    asked: Callable[[], dict],
) -> threading.Event:
    """Renew the lease every `heartbeat_s` on a daemon thread and, between renewals, read the run's row (`asked`)
    for a cancel every CANCEL_POLL_S; a cancel request sets both events, a lost lease or the worker's `stop` sets
    `cancelled`. Returns the event that ends the thread."""
    stop_beat = threading.Event()

    def beat() -> None:
        renew_at = time.monotonic() + heartbeat_s
        while not stop_beat.wait(min(heartbeat_s, CANCEL_POLL_S)):
            try:
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + heartbeat_s
                    requested = lease.renew()
                else:
                    requested = bool(asked().get("cancel_requested"))
                if requested:
                    cancel_requested.set()
                    halt.set()
            except Exception:  # noqa: BLE001 - the catalog unreachable for a moment: Lease.check stops writes in time
                pass
            if lease.lost.is_set() or (stop is not None and stop.is_set()):
                halt.set()

    threading.Thread(target=beat, name="ttc-heartbeat", daemon=True).start()
    return stop_beat


def _register_questions(prepared: PreparedRun, store: Store) -> int:
    """Write the run's questions once (before any sample) and return how many samples it already has."""
    run_id = prepared.run_id
    store.remove_stale_temp_files(run_id)
    if not store.has_questions(run_id):
        store.write_shard("questions", run_id, questions_table(run_id, prepared.questions))
    return int(store.query("SELECT count(*) AS n FROM samples WHERE run_id = ?", [run_id])["n"][0])


@dataclass(frozen=True)
class _ModelRun:
    """What one model's part of a run reports to and stops on."""

    done: int  # samples of the run stored before this model's part
    progress: Callable[[int, int], None] | None
    halt: threading.Event
    why_stopped: Callable[[], TtcError]  # the error that says why generation stopped


def _run_model(
    prepared: PreparedRun,
    store: Store,
    model_index: int,
    model: ResolvedModel,
    run: _ModelRun,
    lease,
    engine_factory: Callable[[ResolvedModel, object], Engine] | None,
    ray_address: str | None,
) -> int:
    """One model's missing samples (or its adaptive rounds), then its analysis; returns the samples it wrote and
    raises `run.why_stopped()` when generation was stopped."""
    spec, done, halt = prepared.spec, run.done, run.halt
    existing = store.existing_sample_keys(prepared.run_id, model.name)
    adaptive = spec.adaptive is not None and not allocation_finished(prepared, store, model.name)
    missing = (
        []  # an adaptive run's rounds decide its keys (backend/execution/allocation.py)
        if spec.adaptive is not None
        else [
            (q, i)
            for q in prepared.questions
            for i in range(spec.samples_per_question)
            if (q.question_id, i) not in existing
        ]
    )
    if not (missing or adaptive or questions_left(prepared, store, model.name)):
        return 0
    fanned = ray_address is not None or spec.engine.replicas != 1  # type: ignore[attr-defined]
    if fanned and spec.adaptive is None:  # an adaptive run decides round by round on this engine
        written = _fan_out(prepared, store, model_index, missing, done, run.progress, halt, lease, ray_address)
        if halt.is_set():
            raise run.why_stopped()
        return written
    generated = 0
    # searches come after the samples with batches of their own: then the machine's best, else the run's size
    options = with_parallelism(spec.engine, len(missing) if missing and not prepared.searches else None)
    engine = (engine_factory or create_engine)(model, options)
    try:
        if model.is_hub_id:  # vLLM read the architecture and chat template when it loaded the model
            model = replace(model, arch=engine.arch, chat_template=getattr(engine, "chat_template", None))
        if missing:
            generated += sample_model(prepared, store, model, engine, missing, done, run.progress, halt)
        if adaptive:
            generated += sample_adaptively(prepared, store, model, engine, done + generated, run.progress, halt)
        if halt.is_set():
            raise run.why_stopped()
        analyse(prepared, store, model, engine, halt)
    finally:
        engine.close()
    if halt.is_set():
        raise run.why_stopped()
    return generated


def _fan_out(
    prepared: PreparedRun,
    store: Store,
    model_index: int,
    missing: list[tuple[Question, int]],
    done: int,
    progress: Callable[[int, int], None] | None,
    halt: threading.Event,
    lease,
    ray_address: str | None,
) -> int:
    """One model's samples, then its analysis, on engine replicas (the same replicas for both); returns how many
    samples they wrote."""
    from backend.execution import fanout  # Ray is imported only by a run that fans out

    fanout.connect(ray_address)
    replicas, resources = fanout.plan_replicas(prepared.spec.engine)
    plan = fanout.FanOut(
        spec_json=json.dumps(prepared.spec.model_dump(mode="json")),
        model_index=model_index,
        store_root=str(store.root),
        run_id=prepared.run_id,
        replicas=replicas,
        resources=resources,
        env=fanout.replica_env(),
        halt=halt,
        lease_check=lease.check,
        actor_name=f"ttc-{prepared.run_id}-{model_index}",
    )
    model_name = prepared.models[model_index][1].name
    with plan:
        written = 0
        if missing:
            written = plan.sample(
                [(q.question_id, i) for q, i in missing],
                progress=lambda n: progress(done + n, prepared.total_samples) if progress else None,
            )
        if not halt.is_set():
            left = questions_left(prepared, store, model_name)
            if left:
                plan.analyse(left)
    return written


def compact_finished(store: Store, run_id: str) -> None:
    """Merge a finished run's shards (one file per table) so the store stays fast as runs accumulate; replaced
    shards of earlier compactions are removed once no reader can hold them. A failure here costs speed, not data:
    the run stays done and `ttc store compact` can merge it later."""
    try:
        compact_run(store, run_id)
        purge_replaced(store)
    except Exception as e:  # noqa: BLE001 - see the docstring
        print(f"run {run_id}: compaction skipped ({type(e).__name__}: {e})", file=sys.stderr)
