"""Embedded CPU engine: llama.cpp's own server, in-process, through xllamacpp.

The server owns `n_parallel` slots and batches every in-flight request across them (continuous batching), so
`generate` submits each completion from its own thread and lets llama.cpp schedule; requests with a shared prompt
prefix reuse the slot's KV cache (`cache_prompt`). One completion per call, each with its own seed: results do not
depend on scheduling, and a resumed run regenerates exactly the missing samples.

A completion that may have to stop mid-way (a `generate` given `should_stop`: a run's samples, which a cancel or a
stopping worker interrupts) goes through the server's private listener instead of the in-process call, which
cannot be interrupted and would hold a cancel until every slot had decoded up to max_tokens (measured: ~52 s on a
two-model run). It is the same handler (/v1/completions), so the answer is the same; closing the connection makes
llama.cpp cancel the task, and the caller returns at once, discarding the partial text."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import select
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence

import numpy as np

from backend.engines.threaded import GenerationAborted, ThreadedEngineMixin, completion_body, parse_choice
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
TOKENIZE_BATCH_CHARS = 1 << 20  # texts per /tokenize request of count_tokens_many, by characters
_SUN_PATH_MAX = 100  # a unix socket path must fit sockaddr_un (108 bytes on Linux)
STOP_POLL_S = 0.1  # how often a completion in flight asks `should_stop`


def slot_body(body: dict, slot: int, prompt_cache: bool = True) -> dict:
    """The request as this engine sends it: pinned to `slot` (the worker that owns the slot sends it related requests
    in order, engines/threaded.py), with llama.cpp's own truncating samplers off; without `prompt_cache`, the slot's
    KV of an earlier prompt is not reused."""
    out = {**body, **UNTRUNCATED, "id_slot": slot}
    if not prompt_cache:
        out["cache_prompt"] = False
    return out


class LlamaCppEngine(ThreadedEngineMixin):
    """llama.cpp in-process (xllamacpp). `n_ctx_per_slot` bounds prompt + completion length per request.
    `prompt_cache=False` (with one slot: `ttc serve --reproducible`) makes each completion a function of its prompt
    and seed alone: llama.cpp's arithmetic otherwise depends on what shares its batch and on which cached prefix a
    prompt resumes from, in the low digits of every logit."""

    def __init__(
        self,
        model: ResolvedModel,
        n_parallel: int = 4,
        n_ctx_per_slot: int = 2048,
        threads: int | None = None,
        prompt_cache: bool = True,
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
        self.prompt_cache = prompt_cache
        params.slot_prompt_similarity = SLOT_PROMPT_SIMILARITY
        params.cache_ram_mib = HOST_CACHE_MIB if prompt_cache else 0
        params.warmup = False
        params.n_threads_http = n_parallel + 2  # every slot's request over the listener at once, and /tokenize
        params.verbosity = int(os.environ.get("TTC_LLAMA_VERBOSITY", "0"))  # llama.cpp logs every slot event at 3
        self._socket_dir = tempfile.mkdtemp(prefix="ttc-llama-")  # 0700
        self._tokenize_lock = threading.Lock()
        try:
            self._listener, self._key = _lock_listener(params, self._socket_dir)
            try:
                self._server = xllamacpp.Server(params)
            except Exception as e:  # the binding raises plain RuntimeError/ValueError on a bad file
                raise EngineError(f"{model.name}: llama.cpp could not load {model.path}: {e}") from None
        except BaseException:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            raise

    exact_token_counts = True

    def count_tokens(self, text: str) -> int:
        """The prompt tokens llama.cpp reports for a completion of `text` (its /tokenize, special tokens added and
        parsed as a completion does): no forward pass. The binding has no in-process tokenizer, so this asks the
        server's own listener, which only this user can reach and which wants the random key."""
        return len(self.tokenize(text, add_special=True))

    def count_tokens_many(self, texts: Sequence[str], add_special: bool) -> list[int]:
        """Each text's token count (special tokens parsed, as `count_tokens` does; added when `add_special`), in
        few /tokenize requests. A request's content is the texts with a separator token between them: llama.cpp
        tokenizes each string of a mixed list alone and passes token ids through (tokenize_mixed), so the counts
        are the runs between separators. A text that itself yields the separator (its literal text, parsed as
        special) makes a batch's separators more than its gaps: that batch is counted one text at a time. The
        special tokens a text gets (BOS, EOS) do not depend on it: their count is added to each."""
        extra = len(self.tokenize("", add_special=True)) if add_special else 0
        sep = self._separator_token()
        out: list[int] = []
        start = 0
        while start < len(texts):
            stop, chars = start, 0
            while stop < len(texts) and (stop == start or chars + len(texts[stop]) <= TOKENIZE_BATCH_CHARS):
                chars += len(texts[stop])
                stop += 1
            batch = list(texts[start:stop])
            content: list[str | int] = []
            for t in batch:
                content += [t, sep]
            tokens = np.asarray(self.tokenize(content[:-1], add_special=False), dtype=np.int64)
            cuts = np.flatnonzero(tokens == sep)
            if len(cuts) == len(batch) - 1:
                counts = np.diff(np.concatenate([[-1], cuts, [len(tokens)]])) - 1
                out.extend((counts + extra).tolist())
            else:
                out.extend(len(self.tokenize(t, add_special=False)) + extra for t in batch)
            start = stop
        return out

    def _separator_token(self) -> int:
        """The end-of-text token: a control token that plain text never yields unless it spells it out."""
        from backend.models.gguf_meta import read_header

        assert self.model.path is not None  # __init__ refuses a model without a file
        eos = read_header(self.model.path).metadata.get("tokenizer.ggml.eos_token_id")
        if eos is None:
            raise EngineError(f"{self.name}: its GGUF names no end-of-text token (tokenizer.ggml.eos_token_id)")
        return int(eos)

    def tokenize(self, content: str | list, add_special: bool) -> list[int]:
        """The token ids of `content` (a text, or texts and token ids mixed, as llama.cpp's /tokenize takes it),
        special tokens parsed; `add_special`: with the ones the tokenizer adds (BOS) before the first text."""
        body = json.dumps({"content": content, "add_special": add_special, "parse_special": True})
        with self._tokenize_lock:
            conn = _connection(self._listener, self._server.listening_address)
            try:
                conn.request("POST", "/tokenize", body, {"Authorization": f"Bearer {self._key}"})
                resp = conn.getresponse()
                raw = resp.read()
            except OSError as e:
                raise EngineError(f"{self.name}: llama.cpp's tokenizer did not answer: {e}") from None
            finally:
                conn.close()
        if resp.status != 200:
            raise EngineError(f"{self.name}: llama.cpp's /tokenize answered HTTP {resp.status}: {raw[:200]!r}")
        return json.loads(raw)["tokens"]

    def _complete_one(self, body: dict, slot: int) -> dict:
        return self._server.handle_completions(slot_body(body, slot, self.prompt_cache))

    def _complete_abortable(self, body: dict, slot: int, should_stop: Callable[[], bool] | None) -> dict:
        """The completion over the private listener, given up once `should_stop()` is true: the connection closes,
        llama.cpp cancels the task and frees the slot (module docstring)."""
        if should_stop is None:
            return self._complete_one(body, slot)
        conn = _connection(self._listener, self._server.listening_address)
        try:
            conn.request(
                "POST",
                "/v1/completions",
                json.dumps(slot_body(body, slot, self.prompt_cache)),
                {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
            )
            while not select.select([conn.sock], [], [], STOP_POLL_S)[0]:
                if should_stop():
                    conn.sock.shutdown(socket.SHUT_RDWR)
                    raise GenerationAborted
            raw = conn.getresponse().read()
        except OSError as e:
            raise EngineError(f"{self.name}: llama.cpp's listener did not answer a completion: {e}") from None
        finally:
            conn.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineError(f"{self.name}: llama.cpp answered a completion with non-JSON: {raw[:200]!r}") from None

    def close(self) -> None:
        self._server = None
        shutil.rmtree(self._socket_dir, ignore_errors=True)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


def _connection(listener: str | None, address: str) -> http.client.HTTPConnection:
    """A connection to the server's listener: its private unix socket, or the loopback port it fell back to."""
    if listener is not None:
        return _UnixConnection(listener)
    host, _, port = str(address).removeprefix("http://").rpartition(":")
    return http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=60)


def _lock_listener(params, socket_dir: str) -> tuple[str | None, str]:
    """xllamacpp always starts llama.cpp's HTTP listener (default: a random 127.0.0.1 port, no key; it cannot be
    turned off); this engine calls the handlers in-process, which check no key, and the listener only for
    /tokenize (the binding has no tokenizer of its own) and for completions it may have to stop mid-way. Left so, any local user could drive the model. It listens
    instead on a unix socket in a private (0700) directory, removed when the engine closes, so no other user can
    connect to it, and it requires a random key that only this engine holds, in case something else running as
    this user reaches it; only /health answers without the key (llama.cpp's choice). Where the socket path would
    not fit sockaddr_un, the key alone guards a loopback port. Returns (the socket path or None, the key)."""
    path = os.path.join(socket_dir, "http.sock")
    listener = None
    if len(path.encode()) <= _SUN_PATH_MAX:
        params.hostnames = [path]
        listener = path
    key = secrets.token_urlsafe(32)
    params.api_keys = [key]
    return listener, key


__all__ = ["LlamaCppEngine", "ThreadedEngineMixin", "completion_body", "parse_choice", "slot_body"]
