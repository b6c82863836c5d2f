"""Request fan-out for engines that take one completion per HTTP-shaped call (llama.cpp in-process, any
OpenAI-compatible server), with slot affinity.

llama.cpp keeps one KV cache per slot and reuses it for the next request only up to the longest common prefix.
A free-for-all thread pool sends related requests (the children of one beam, a question's 16 samples) to
whichever slot frees first, so each slot keeps re-reading other prompts. Here each worker thread owns one slot
(`slot` is passed to `_complete_one`, which may pin the request there) and works through one *affinity group* at
a time, in order, so consecutive requests on a slot extend each other's text. Groups are taken largest first
(longest-processing-time first, for balance); when no group is left untaken a thread joins the largest
remaining one from its far end, so no slot idles while work remains.

A `generate` call made from inside a worker thread (a verifier judging, from `on_complete`, the text this slot
has just generated) runs inline on that thread's slot: its prompt extends what the slot holds, so the engine
serves it from cache instead of re-reading it on another slot.

Concurrent `generate` calls (`ttc serve` answering requests in parallel) share the slots: a worker takes the
lowest-numbered free slot for as long as it works and gives it back when its call has no work left, so two calls
never pin requests to one slot while another idles; llama.cpp batches whatever is in flight on all slots. A single
call's workers find every slot free, as before."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

from backend.engines.base import (
    Completion,
    GenerationRequest,
    OnComplete,
    SamplingParams,
    TokenLogprob,
)
from backend.errors import EngineError

_NO_AFFINITY = object()
_POOL_LOCK = threading.Lock()  # creates an engine's SlotPool once


class GenerationAborted(Exception):
    """An in-flight completion given up because `should_stop()` turned true: its partial text is discarded."""


def parse_choice(
    choice: dict, usage: dict, latency_s: float, seed: int | None, want_logprobs: bool, top_k: int | None = None
) -> Completion:
    """Turn one OpenAI-shaped completion choice (llama.cpp server or any compatible server) into a Completion.
    `top_k` keeps that many alternatives per token: vLLM's server adds the sampled token to its top list when it
    ranks below, llama.cpp does not, and the store keeps one shape whichever served it."""
    logprobs = None
    if want_logprobs:
        lp = choice.get("logprobs") or {}
        if "content" in lp:  # llama.cpp / chat style
            logprobs = [
                TokenLogprob(
                    t.get("token", ""),
                    float(t["logprob"]),
                    {a.get("token", ""): float(a["logprob"]) for a in t.get("top_logprobs") or []},
                )
                for t in lp["content"]
            ]
        elif "token_logprobs" in lp:  # legacy OpenAI completions style (vLLM serve)
            tops = lp.get("top_logprobs") or [None] * len(lp["token_logprobs"])
            logprobs = [
                TokenLogprob(tok, float(v) if v is not None else 0.0, dict(top or {}))
                for tok, v, top in zip(lp.get("tokens") or [""] * len(tops), lp["token_logprobs"], tops)
            ]
        else:
            logprobs = []
        if top_k is not None:
            for t in logprobs:
                if len(t.top) > top_k:
                    t.top = dict(sorted(t.top.items(), key=lambda kv: -kv[1])[:top_k])
    details = usage.get("prompt_tokens_details") or {}
    return Completion(
        text=choice.get("text", ""),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        finish_reason=str(choice.get("finish_reason") or "stop"),
        latency_s=latency_s,
        cached_prompt_tokens=int(details.get("cached_tokens") or 0),
        seed=seed,
        logprobs=logprobs,
    )


def completion_body(prompt: str, params: SamplingParams, seed: int | None) -> dict:
    body = {
        "prompt": prompt,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "cache_prompt": True,
    }
    if seed is not None:
        body["seed"] = int(seed)
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logprobs is not None:
        body["logprobs"] = max(int(params.logprobs), 1)
    return body


class AffinityScheduler:
    """Hands out (request index, completion index) jobs to slot-owning workers, one affinity group at a time."""

    def __init__(self, requests: Sequence[GenerationRequest]):
        self.queues: dict[Hashable, deque[tuple[int, int]]] = {}
        for ri, r in enumerate(requests):
            key = _NO_AFFINITY if r.affinity is None else r.affinity
            self.queues.setdefault(key, deque()).extend((ri, i) for i in range(r.n))
        self.owners: dict[Hashable, int] = {k: 0 for k in self.queues}
        self.lock = threading.Lock()

    def next(self, state: list) -> tuple[int, int] | None:
        """The next job for a worker whose state is [group, from_back]; None when all work is handed out."""
        with self.lock:
            group, from_back = state
            if group is None or not self.queues[group]:  # this worker's group is done: take another
                if group is not None:
                    self.owners[group] -= 1
                left = [k for k, q in self.queues.items() if q]
                if not left:
                    state[0] = None
                    return None
                free = [k for k in left if self.owners[k] == 0]
                group = max(free or left, key=lambda k: len(self.queues[k]))  # ties: first in request order
                from_back = not free
                self.owners[group] += 1
                state[0], state[1] = group, from_back
            q = self.queues[group]
            return q.pop() if from_back else q.popleft()


class SlotPool:
    """The engine's slots, lent to the workers of every `generate` call in flight: the lowest free one first."""

    def __init__(self, n: int):
        self.free = set(range(n))
        self.cond = threading.Condition()

    def take(self) -> int:
        with self.cond:
            self.cond.wait_for(lambda: bool(self.free))
            slot = min(self.free)
            self.free.remove(slot)
            return slot

    def give(self, slot: int) -> None:
        with self.cond:
            self.free.add(slot)
            self.cond.notify()


class ThreadedEngineMixin:
    """`generate` over `n_parallel` slot-owning worker threads, one completion per call; fires `on_complete` per
    request (from the worker thread) once its n completions are in. Subclasses implement
    `_complete_one(body, slot) -> dict` (an OpenAI-shaped completion response). Calls may come from several
    threads at once: their workers share the slots (`SlotPool`)."""

    n_parallel: int
    name: str
    inline_follow_ups = True  # a generate() from on_complete runs on the slot that just produced the completion
    concurrent_generate = True  # generate() may be called from several threads at once

    def _slots(self) -> SlotPool:
        pool = self.__dict__.get("_slot_pool")
        if pool is None:
            with _POOL_LOCK:
                pool = self.__dict__.setdefault("_slot_pool", SlotPool(self.n_parallel))
        return pool

    def _complete_one(self, body: dict, slot: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _complete_abortable(self, body: dict, slot: int, should_stop: Callable[[], bool] | None) -> dict:
        """`_complete_one`, given up (GenerationAborted) once `should_stop()` turns true where the engine can stop a
        completion mid-way (engines/llamacpp.py); by default the completion runs to its end."""
        return self._complete_one(body, slot)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: OnComplete | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[Completion]]:
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        remaining = [r.n for r in requests]
        lock = threading.Lock()
        local = self.__dict__.setdefault("_worker_slot", threading.local())

        def one(ri: int, i: int, slot: int) -> None:
            req = requests[ri]
            seed = None if req.params.seed is None else req.params.seed + i
            t0 = time.perf_counter()
            try:
                resp = self._complete_abortable(completion_body(req.prompt, req.params, seed), slot, should_stop)
            except GenerationAborted:  # stopped mid-way: no completion, no callback
                return
            latency = time.perf_counter() - t0
            if not isinstance(resp, dict) or "choices" not in resp:
                raise EngineError(f"{self.name}: engine returned an error: {str(resp)[:300]}")
            k = req.params.logprobs
            comp = parse_choice(
                resp["choices"][0],
                resp.get("usage") or {},
                latency,
                seed,
                k is not None,
                None if k is None else max(k, 1),
            )
            with lock:
                results[ri][i] = comp
                remaining[ri] -= 1
                done = remaining[ri] == 0
            if done and on_complete is not None:
                on_complete(ri, req, results[ri])  # type: ignore[arg-type]

        own_slot = getattr(local, "slot", None)
        if own_slot is not None:  # nested call from one of our workers: stay on its slot
            for ri, r in enumerate(requests):
                for i in range(r.n):
                    if should_stop is not None and should_stop():
                        return results  # type: ignore[return-value]
                    one(ri, i, own_slot)
            return results  # type: ignore[return-value]

        scheduler = AffinityScheduler(requests)
        slots = self._slots()

        def worker() -> None:
            slot = slots.take()
            local.slot = slot
            state: list = [None, False]
            try:
                while (job := scheduler.next(state)) is not None:
                    if should_stop is not None and should_stop():
                        return
                    one(*job, slot)
            finally:
                local.slot = None
                slots.give(slot)

        n_jobs = sum(r.n for r in requests)
        if n_jobs:
            workers = max(1, min(self.n_parallel, n_jobs))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for fut in [pool.submit(worker) for _ in range(workers)]:
                    fut.result()
        return results  # type: ignore[return-value]
