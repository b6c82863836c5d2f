"""Embedded CPU engine: llama.cpp's own server, in-process, through xllamacpp.

The server owns `n_parallel` slots and batches every in-flight request across them (continuous batching), so
`generate` submits each completion from its own thread and lets llama.cpp schedule; requests with a shared prompt
prefix reuse the slot's KV cache (`cache_prompt`). One completion per call, each with its own seed: results do not
depend on scheduling, and a resumed run regenerates exactly the missing samples."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from backend.engines.base import Completion, GenerationRequest, OnComplete, SamplingParams, TokenLogprob
from backend.errors import EngineError
from backend.models.registry import ResolvedModel


def parse_choice(choice: dict, usage: dict, latency_s: float, seed: int | None, want_logprobs: bool) -> Completion:
    """Turn one OpenAI-shaped completion choice (llama.cpp server or any compatible server) into a Completion."""
    logprobs = None
    if want_logprobs:
        lp = choice.get("logprobs") or {}
        if "content" in lp:  # llama.cpp / chat style
            logprobs = [
                TokenLogprob(t.get("token", ""), float(t["logprob"]), {a.get("token", ""): float(a["logprob"]) for a in t.get("top_logprobs") or []})
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


class ThreadedEngineMixin:
    """Fan a batch of requests out over `n_parallel` threads, one completion per call; fire `on_complete`
    per request once its n completions are in. Subclasses implement `_complete_one(body) -> dict`."""

    n_parallel: int

    def _complete_one(self, body: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: OnComplete | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[Completion]]:
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        remaining = [r.n for r in requests]
        lock = threading.Lock()

        def one(ri: int, i: int) -> None:
            if should_stop is not None and should_stop():
                return
            req = requests[ri]
            seed = None if req.params.seed is None else req.params.seed + i
            body = completion_body(req.prompt, req.params, seed)
            t0 = time.perf_counter()
            resp = self._complete_one(body)
            latency = time.perf_counter() - t0
            if not isinstance(resp, dict) or "choices" not in resp:
                raise EngineError(f"{self.name}: engine returned an error: {str(resp)[:300]}")
            comp = parse_choice(resp["choices"][0], resp.get("usage") or {}, latency, seed, req.params.logprobs is not None)
            with lock:
                results[ri][i] = comp
                remaining[ri] -= 1
                done = remaining[ri] == 0
            if done and on_complete is not None:
                on_complete(ri, req, results[ri])  # type: ignore[arg-type]

        jobs = [(ri, i) for ri, r in enumerate(requests) for i in range(r.n)]
        if jobs:
            with ThreadPoolExecutor(max_workers=max(1, min(self.n_parallel, len(jobs)))) as pool:
                for fut in [pool.submit(one, ri, i) for ri, i in jobs]:
                    fut.result()
        return results  # type: ignore[return-value]


class LlamaCppEngine(ThreadedEngineMixin):
    """llama.cpp in-process (xllamacpp). `n_ctx_per_slot` bounds prompt + completion length per request."""

    def __init__(self, model: ResolvedModel, n_parallel: int = 4, n_ctx_per_slot: int = 2048, threads: int | None = None):
        import xllamacpp

        self.model = model
        self.name = model.name
        self.arch = model.arch
        self.n_parallel = n_parallel
        params = xllamacpp.CommonParams()
        params.model.path = str(model.path)
        params.n_parallel = n_parallel
        params.n_ctx = n_ctx_per_slot * n_parallel
        params.cpuparams.n_threads = threads or os.cpu_count() or 2
        params.cpuparams_batch.n_threads = threads or os.cpu_count() or 2
        params.warmup = False
        params.verbosity = int(os.environ.get("TTC_LLAMA_VERBOSITY", "0"))  # llama.cpp logs every slot event at 3
        try:
            self._server = xllamacpp.Server(params)
        except Exception as e:  # the binding raises plain RuntimeError/ValueError on a bad file
            raise EngineError(f"{model.name}: llama.cpp could not load {model.path}: {e}") from None

    def _complete_one(self, body: dict) -> dict:
        return self._server.handle_completions(body)

    def close(self) -> None:
        self._server = None
