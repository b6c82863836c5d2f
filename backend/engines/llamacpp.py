"""Embedded CPU engine: llama.cpp's own server, in-process, through xllamacpp.

The server owns `n_parallel` slots and batches every in-flight request across them (continuous batching), so
`generate` submits each completion from its own thread and lets llama.cpp schedule; requests with a shared prompt
prefix reuse the slot's KV cache (`cache_prompt`). One completion per call, each with its own seed: results do not
depend on scheduling, and a resumed run regenerates exactly the missing samples."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile

from backend.engines.threaded import ThreadedEngineMixin, completion_body, parse_choice
from backend.errors import EngineError
from backend.models.registry import ResolvedModel

# llama.cpp's server truncates every distribution with top_k=40 and min_p=0.05 unless told otherwise; a spec says
# temperature and top_p only, and vLLM applies neither, so both are switched off: CPU and GPU runs of one spec sample
# the same distribution, and coverage at large k is not capped by a truncation nobody asked for.
UNTRUNCATED = {"top_k": 0, "min_p": 0.0}


# Every request names its slot (id_slot), and a slot holds one text. A search switches a slot between beams, and
# siblings overwrite each other's state, so a beam kept for the next round has usually lost its KV by then. llama.cpp
# keeps evicted slot states in host memory (its prompt cache) but only consults it when a pinned slot covers no
# more than `slot_prompt_similarity` of the new prompt. At 1.0 it always does: before each request the slot's state
# is saved there (a copy of its KV, ~12 KB a token on the default model) and the cached state sharing the longest
# prefix with the new prompt is restored when it beats the slot's own. Measured on bench/search.py's beam search:
# generation prompt tokens recomputed fall from 6,218 to 1,648 (cache hit 0.955 -> 0.988); the copies cost
# best-of-N nothing measurable (BENCHMARKS.md).
SLOT_PROMPT_SIMILARITY = 1.0
HOST_CACHE_MIB = 4096  # llama.cpp evicts its oldest states beyond this (default 8192); ~1,300 states of 250 tokens
_SUN_PATH_MAX = 100  # a unix socket path must fit sockaddr_un (108 bytes on Linux)


def slot_body(body: dict, slot: int) -> dict:
    """The request as this engine sends it: pinned to `slot` (the worker that owns the slot sends it related requests
    in order, engines/threaded.py), with llama.cpp's own truncating samplers off."""
    return {**body, **UNTRUNCATED, "id_slot": slot}


class LlamaCppEngine(ThreadedEngineMixin):
    """llama.cpp in-process (xllamacpp). `n_ctx_per_slot` bounds prompt + completion length per request."""

    def __init__(
        self, model: ResolvedModel, n_parallel: int = 4, n_ctx_per_slot: int = 2048, threads: int | None = None
    ):
        import xllamacpp

        if model.arch is None:
            raise EngineError(
                f"{model.name}: no architecture numbers for the FLOPs ledger (a Hugging Face id?); llama.cpp loads GGUF files"
            )
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
        params.slot_prompt_similarity = SLOT_PROMPT_SIMILARITY
        params.cache_ram_mib = HOST_CACHE_MIB
        params.warmup = False
        params.verbosity = int(os.environ.get("TTC_LLAMA_VERBOSITY", "0"))  # llama.cpp logs every slot event at 3
        socket_dir = tempfile.mkdtemp(prefix="ttc-llama-")  # 0700
        try:
            _lock_listener(params, socket_dir)
            try:
                self._server = xllamacpp.Server(params)
            except Exception as e:  # the binding raises plain RuntimeError/ValueError on a bad file
                raise EngineError(f"{model.name}: llama.cpp could not load {model.path}: {e}") from None
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)  # the socket stays open, its path is gone: no way in

    def _complete_one(self, body: dict, slot: int) -> dict:
        return self._server.handle_completions(slot_body(body, slot))

    def close(self) -> None:
        self._server = None


def _lock_listener(params, socket_dir: str) -> None:
    """xllamacpp always starts llama.cpp's HTTP listener (default: a random 127.0.0.1 port, no key; it cannot be
    turned off), although this engine only calls the handlers in-process, which check no key. Left so, any local
    user could drive the model. It listens instead on a unix socket in a private (0700) directory, removed as soon
    as the model is loaded, so nobody can connect to it after that (and no other user before), and it requires a
    random key that only `params` holds, in case something running as this user reaches it while the model loads;
    only /health answers without the key (llama.cpp's choice). Where the socket path would not fit sockaddr_un,
    the key alone guards a loopback port."""
    path = os.path.join(socket_dir, "http.sock")
    if len(path.encode()) <= _SUN_PATH_MAX:
        params.hostnames = [path]
    params.api_keys = [secrets.token_urlsafe(32)]


__all__ = ["LlamaCppEngine", "ThreadedEngineMixin", "completion_body", "parse_choice", "slot_body"]
