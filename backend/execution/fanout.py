"""A run fanned out on Ray: its missing samples, then its analysis (verifier scores and searches), split by
question into shards, are taken from a queue by engine replicas — Ray actors, one per GPU with vLLM
(tensor-parallel inside vLLM for large models), one per group of CPU threads with llama.cpp — each writing its
shards straight to the store.

Why this is exact: a sample's identity (run, model, question, sample index) and its seed are fixed by the spec,
so it does not matter which replica generates it; a search's requests are seeded by what identifies them within
their question (strategies/context.py), so a question's tree does not depend on which questions share its shard.
Before a shard a replica reads what of it the store already holds and does only the rest; a shard whose replica
died is queued again and the next replica finds what the dead one wrote. Each sample, score and tree lands
exactly once, with the same seeds (and, on a deterministic engine, the same text) as one local engine gives it.

Why replicas need no catalog access (nor its password): the worker that holds the run's lease (store/leases.py)
grants each replica a write permit for a few seconds at every heartbeat; a replica writes a shard only under a
live permit, so when the worker dies or loses its lease its replicas stop writing within seconds."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.errors import EngineError
from store.leases import LEASE_S, RENEW_MARGIN_S, LeaseLost

PERMIT_S = LEASE_S - RENEW_MARGIN_S
"""How long a replica may write after its last permit: never past the worker's own lease."""
SHARD_QUESTIONS = 4
"""Questions per shard at most: small enough that a dead replica loses little and replicas finish together."""
RESTARTS_PER_REPLICA = 2
"""A replica that dies is replaced, this many times per replica of the run at most; then the run fails."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise EngineError(
            "engine.replicas: fanning generation out needs Ray; install it with pip install 'ttc-lab[ray]' "
            "(or set engine.replicas: 1)"
        ) from None
    return ray


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` ('auto': the one this machine belongs to), or start a local one the first
    time (it lives as long as this process)."""
    ray = require_ray()
    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        else:  # its workers import ttc-lab from where this process does (an install, or a checkout)
            here = str(Path(__file__).resolve().parents[1])
            ray.init(
                log_to_driver=False,
                include_dashboard=False,
                configure_logging=False,
                runtime_env={"env_vars": {"PYTHONPATH": here}},
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EngineError(
            f"--ray: could not connect to the Ray cluster at {address or 'a new local one'}: {e}"
        ) from None


def _cluster_cpus_gpus() -> tuple[int, int]:
    ray = require_ray()
    resources = ray.cluster_resources()
    return int(resources.get("CPU", 1)), int(resources.get("GPU", 0))


def plan_replicas(options) -> tuple[int, dict]:
    """(replica count, Ray resources of one replica) for the engine's options on the connected cluster."""
    cpus, gpus = _cluster_cpus_gpus()
    if options.kind == "vllm" and gpus:
        per = {"num_gpus": getattr(options, "tensor_parallel_size", 1), "num_cpus": 1}
        fit = max(1, gpus // per["num_gpus"])
    elif options.kind == "openai":
        per, fit = {"num_cpus": 0.25}, max(1, cpus * 4)
    else:
        threads = getattr(options, "threads", None) or 1
        per, fit = {"num_cpus": threads}, max(1, cpus // threads)
    wanted = fit if options.replicas == "auto" else int(options.replicas)
    return wanted, per


class Replica:
    """One engine replica (wrapped as a Ray actor by `_actor_class`): loads the run's model once, then samples or
    analyses the shards the worker hands it. Concurrent calls: `sample` or `analyse` runs while `permit` and `halt`
    arrive."""

    def __init__(self, spec_json: str, model_index: int, store_root: str, env: dict[str, str]):
        os.environ.update(env)
        from backend.config import parse_spec
        from backend.engines import create_engine
        from backend.execution.sampling import prepare_run
        from store import Store

        self.prepared = prepare_run(parse_spec(json.loads(spec_json), "fanned-out spec"))
        self.model = self.prepared.models[model_index][1]
        self.store = Store.shard_writer(store_root)
        options = self.prepared.spec.engine.model_copy(update={"replicas": 1})
        self.engine = create_engine(self.model, options, n_requests=None)
        if self.model.is_hub_id:  # vLLM read the architecture when it loaded the model
            from dataclasses import replace

            self.model = replace(
                self.model, arch=self.engine.arch, chat_template=getattr(self.engine, "chat_template", None)
            )
        self.stop = threading.Event()
        self.permit_until = time.monotonic() + PERMIT_S

    def ready(self) -> str:
        return f"{os.uname().nodename}-{os.getpid()}"

    def permit(self) -> None:
        self.permit_until = time.monotonic() + PERMIT_S

    def halt(self) -> None:
        self.stop.set()

    def _check(self) -> None:
        if self.stop.is_set() or time.monotonic() > self.permit_until:
            raise LeaseLost(f"run {self.prepared.run_id}: this replica's write permit lapsed; it stopped writing")

    def sample(self, keys: list[tuple[str, int]]) -> int:
        from backend.execution.sampling import sample_model

        run_id = self.prepared.run_id
        by_id = {q.question_id: q for q in self.prepared.questions}
        existing = self.store.existing_sample_keys(run_id, self.model.name)
        missing = [(by_id[q], i) for q, i in keys if (q, i) not in existing]
        if not missing or self.stop.is_set():
            return 0
        with self.store.fenced(run_id, self._check):
            return sample_model(self.prepared, self.store, self.model, self.engine, missing, 0, None, self.stop)

    def analyse(self, question_ids: list[str]) -> int:
        from backend.execution.analysis import analyse

        if self.stop.is_set():
            return 0
        with self.store.fenced(self.prepared.run_id, self._check):
            analyse(self.prepared, self.store, self.model, self.engine, self.stop, question_ids)
        return len(question_ids)

    def close(self) -> None:
        self.engine.close()


def _reason(e: Exception) -> str:
    """The last line of a replica's error (Ray wraps it in its own traceback)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1][:500] if lines else type(e).__name__


def replica_env() -> dict[str, str]:
    """What a replica needs of this process's environment: ttc-lab's settings (model cache, store), never the
    catalog URL (replicas do not use the catalog, and it may hold a password)."""
    from store.catalog import CATALOG_ENV

    return {k: v for k, v in os.environ.items() if k.startswith("TTC_") and k != CATALOG_ENV}


def _actor_class():
    ray = require_ray()
    return ray.remote(max_concurrency=3)(Replica)


@dataclass
class FanOut:
    """The worker's side of one model's fanned-out phases: used as a context manager, its replicas load the model
    once, take the sampling shards, then the analysis shards, and are killed on exit."""

    spec_json: str
    model_index: int
    store_root: str
    run_id: str
    replicas: int
    resources: dict
    env: dict[str, str]
    halt: threading.Event  # stops the replicas at their next request
    lease_check: Callable[[], None]  # raises when the worker's lease is gone, which stops them too
    actor_name: str

    def __post_init__(self) -> None:
        self.pool: dict = {}  # replica -> the task it runs (None: idle)
        self.started = 0
        self.deaths = 0
        self.nonce = uuid.uuid4().hex[:6]  # names stay unique when the same run fans out again before Ray frees them

    def __enter__(self) -> FanOut:
        return self

    def __exit__(self, *exc) -> None:
        ray = require_ray()
        for r in self.pool:
            try:
                r.halt.remote()
                ray.kill(r)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.pool.clear()

    def sample(self, keys: list[tuple[str, int]], progress: Callable[[int], None]) -> int:
        """Generate `keys` (question, sample index); returns how many samples the replicas wrote. `progress(n)` gets
        the count of this call's samples written so far."""
        by_question: dict[str, list[tuple[str, int]]] = {}
        for q, i in keys:
            by_question.setdefault(q, []).append((q, i))
        shards = [[k for q in part for k in by_question[q]] for part in _split(list(by_question))]
        return self._dispatch("sample", shards, progress)

    def analyse(self, question_ids: list[str]) -> int:
        """Score and search `question_ids` (backend/execution/analysis.py); returns how many questions were handed out."""
        return self._dispatch("analyse", _split(question_ids), lambda _n: None)

    def _start(self):
        self.started += 1
        actor = _actor_class()
        name = f"{self.actor_name}-{self.nonce}-{self.started}"
        return actor.options(name=name, **self.resources).remote(
            self.spec_json, self.model_index, self.store_root, self.env
        )

    def _grow(self, shards: int) -> None:
        """Start replicas up to the planned count (no more than there are shards) and wait until each has loaded
        the model; a replica that cannot is the run's error, said once."""
        ray = require_ray()
        new = [self._start() for _ in range(min(self.replicas, shards) - len(self.pool))]
        if not new:
            return
        try:
            ray.get([r.ready.remote() for r in new])
        except ray.exceptions.RayActorError as e:
            for r in new:
                ray.kill(r)
            raise EngineError(f"run {self.run_id}: an engine replica could not start: {_reason(e)}") from None
        self.pool.update(dict.fromkeys(new))

    def _dispatch(self, method: str, shards: list[list], progress: Callable[[int], None]) -> int:
        """Hand `shards` to the replicas' `method` from one queue until all are done; a dead replica's shard goes
        back to the queue and a new replica takes its place. Returns the sum of what the calls returned."""
        ray = require_ray()
        queue = [s for s in shards if s]
        self._grow(len(queue))
        shard_of: dict = {}
        total = 0
        last_permit = 0.0
        while queue or any(t is not None for t in self.pool.values()):
            self.lease_check()
            if self.halt.is_set():
                for r in self.pool:
                    r.halt.remote()
                queue.clear()
            if time.monotonic() - last_permit > 2.0:
                for r in self.pool:
                    r.permit.remote()
                last_permit = time.monotonic()
            for r, task in list(self.pool.items()):
                if task is None and queue:
                    shard = queue.pop(0)
                    t = getattr(r, method).remote(shard)
                    self.pool[r] = t
                    shard_of[t] = (r, shard)
            running = [t for t in self.pool.values() if t is not None]
            if not running:
                continue
            done, _ = ray.wait(running, num_returns=1, timeout=0.5)
            for t in done:
                r, shard = shard_of.pop(t)
                try:
                    total += ray.get(t)
                    self.pool[r] = None
                except ray.exceptions.RayActorError:  # the replica died: its shard goes back, a new one joins
                    self.deaths += 1
                    del self.pool[r]
                    print(
                        f"run {self.run_id}: an engine replica died; its shard of {len(shard)} "
                        f"{'samples' if method == 'sample' else 'questions'} is queued again (what it wrote is kept)",
                        file=sys.stderr,
                    )
                    if self.deaths > RESTARTS_PER_REPLICA * self.replicas:
                        raise EngineError(
                            f"run {self.run_id}: {self.deaths} engine replicas died; the run stops (what was written "
                            "is kept, run it again to resume)"
                        ) from None
                    queue.insert(0, shard)
                    self.pool[self._start()] = None
                except ray.exceptions.RayTaskError as e:
                    cause = e.cause if isinstance(getattr(e, "cause", None), Exception) else e
                    raise cause from None
                progress(total)
        return total


def _split(question_ids: list[str]) -> list[list[str]]:
    return [question_ids[s : s + SHARD_QUESTIONS] for s in range(0, len(question_ids), SHARD_QUESTIONS)]
