"""Any OpenAI-compatible `/v1/completions` server (llama.cpp's `llama-server`, `vllm serve`, ...) behind the
`Engine` protocol.

It is the embedded llama.cpp engine with the transport swapped: the same request body (`completion_body`), the
same one-completion-per-call fan-out with seed `seed + i` (`ThreadedEngineMixin`), the same choice parser
(`parse_choice`, which reads llama.cpp's `content` logprobs and the legacy `token_logprobs` that vLLM serves). The
standard library is enough for JSON over HTTP, so this engine adds no dependency.

A server is a process that restarts, sheds load and stalls: a refused connection, HTTP 429 or 5xx, a dropped
connection and a read timeout are retried with capped exponential backoff; any other 4xx is the request's fault
and fails at once with the server's own message.

Which request fields each server honours (anything a server does not know it ignores):
- `prompt`, `max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `logprobs`: both.
- `top_k: 0`, `min_p: 0.0` (`UNTRUNCATED`): both; llama-server would otherwise truncate with top_k=40,
  min_p=0.05, and `vllm serve` with whatever the model's generation_config.json says. 0 means "off" to both.
- `repetition_penalty: 1.0`: vLLM only (llama.cpp's is `repeat_penalty`, 1.0 by default); without it `vllm serve`
  applies the penalty a model's generation_config.json sets (many instruct checkpoints set one).
- `cache_prompt`: llama-server only; vLLM ignores it (logged at debug level) and caches prefixes on its own.
- `model`: vLLM only (it must name a model it serves, else HTTP 404); llama-server ignores it.
- `id_slot` (slot pinning): llama.cpp only; this engine does not send it."""

from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import time
import urllib.error
import urllib.request

from backend.engines.llamacpp import UNTRUNCATED
from backend.engines.threaded import ThreadedEngineMixin
from backend.errors import EngineError
from backend.models.registry import ResolvedModel

# The distribution a spec names and nothing else, on either server (see the list above).
PLAIN_SAMPLING = {**UNTRUNCATED, "repetition_penalty": 1.0}


def _server_message(body: bytes) -> str:
    """The error text a server put in its body: OpenAI's `{"error": {"message": ...}}`, or the raw body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300] or "(empty body)"
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:300]
    return str(err)[:300]


class _Transient(Exception):
    """One failed attempt worth repeating; `str()` says what happened, `retry_after` is the server's hint (s)."""

    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.retry_after = retry_after


def _retry_after(headers) -> float | None:
    """A `Retry-After` given in seconds (the HTTP-date form is rare from these servers and is ignored)."""
    try:
        value = float((headers or {}).get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _api_key(api_key_env: str | None) -> str | None:
    """The key from the environment: the spec names the variable only, so the key never reaches the store."""
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env)
    if not key:
        raise EngineError(
            f"engine.api_key_env: environment variable {api_key_env} is not set or empty; export the server's API key in it"
        )
    return key


class OpenAICompatEngine(ThreadedEngineMixin):
    """POSTs each completion to `{base_url}/completions`; `base_url` is what an OpenAI client takes, e.g.
    `http://127.0.0.1:8080/v1`. `served_model` is the `model` field sent (defaults to the model's name; `vllm
    serve` checks it against the name it serves, llama.cpp ignores it). `timeout_s` bounds the connect and each
    read; a transient failure is tried `retries` more times, waiting `backoff_s`, doubling up to `backoff_max_s`,
    each wait scaled by a random factor in [0.5, 1] so that workers failing together do not retry in lockstep."""

    def __init__(
        self,
        model: ResolvedModel,
        base_url: str,
        n_parallel: int = 4,
        api_key: str | None = None,
        timeout_s: float = 600,
        served_model: str | None = None,
        retries: int = 3,
        api_key_env: str | None = None,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise EngineError(
                f"engine.base_url: expected an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}"
            )
        if model.arch is None:
            raise EngineError(
                f"{model.name}: no architecture numbers for the FLOPs ledger (a Hugging Face id?); its FLOPs are counted from a GGUF's architecture numbers"
            )
        if retries < 0:
            raise EngineError(f"engine.retries: must be 0 or more, got {retries}")
        self.model = model
        self.name = model.name
        self.arch = model.arch
        self.n_parallel = n_parallel
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.served_model = served_model or model.name
        self.retries = retries
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self._jitter = random.Random()  # private: backoff never draws from a stream that sampling might use
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = _api_key(api_key_env) or api_key
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _complete_one(self, body: dict, slot: int) -> dict:
        # `slot` is not sent: pinning is llama.cpp-only (`id_slot`); a worker still sends related requests in order
        url = f"{self.base_url}/completions"
        data = json.dumps({**body, **PLAIN_SAMPLING, "model": self.served_model}).encode()
        raw = self._send(url, data)
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineError(f"{self.name}: {url} answered with non-JSON: {raw[:200]!r}") from None

    exact_token_counts = True  # until the server turns out to have no /tokenize

    def count_tokens(self, text: str) -> int:
        """The prompt tokens of `text` from the server's own tokenizer: `/tokenize` beside the OpenAI routes (llama.cpp's
        server and `vllm serve` both have one; the body carries each one's field names). A server without it (a
        hosted API) gets the UTF-8 byte count instead — an upper bound for byte-level BPE tokenizers, so a budget
        priced with it is never overspent — and `exact_token_counts` turns False."""
        if self.exact_token_counts:
            root = self.base_url.removesuffix("/v1")
            body = {
                "content": text,
                "prompt": text,
                "model": self.served_model,
                "add_special": True,
                "add_special_tokens": True,
            }
            try:
                reply = json.loads(self._send(f"{root}/tokenize", json.dumps(body).encode()))
                return int(reply["count"]) if "count" in reply else len(reply["tokens"])
            except EngineError as e:
                if "HTTP 4" not in str(e):  # unreachable or failing: not a missing endpoint
                    raise
            except (ValueError, KeyError, TypeError):
                pass
            self.exact_token_counts = False
        return len(text.encode("utf-8"))

    def _send(self, url: str, data: bytes) -> bytes:
        """POST with retries; the last transient failure, and how many attempts it took, become one EngineError."""
        attempt = 1
        while True:
            try:
                return self._post(url, data)
            except _Transient as e:
                if attempt > self.retries:
                    tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                    raise EngineError(f"{self.name}: {e} (gave up after {tries})") from None
                time.sleep(self._delay(attempt, e.retry_after))
                attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): jittered exponential, the server's
        `Retry-After` when it asks for longer, never more than `backoff_max_s`."""
        wait = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + 0.5 * self._jitter.random())
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.backoff_max_s)

    def _post(self, url: str, data: bytes) -> bytes:
        """One attempt: the response body, `_Transient` for what may pass, `EngineError` for what will not."""
        req = urllib.request.Request(url, data=data, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            try:
                message = _server_message(e.read())
            except (OSError, http.client.HTTPException):
                message = "(body unreadable)"
            what = f"POST {url} failed with HTTP {e.code}: {message}"
            if e.code == 429 or e.code >= 500:
                raise _Transient(what, _retry_after(e.headers)) from None
            raise EngineError(f"{self.name}: {what}") from None
        except urllib.error.URLError as e:  # before connecting: refused, unreachable, name lookup, TLS
            if isinstance(e.reason, ssl.SSLError) or not isinstance(e.reason, OSError):
                raise EngineError(f"{self.name}: cannot reach {url}: {e.reason}") from None
            raise _Transient(f"cannot reach {url}: {e.reason}") from None
        except TimeoutError:
            raise _Transient(f"POST {url} timed out after {self.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as e:  # connection reset or cut short mid-response
            raise _Transient(f"POST {url} failed: {e!r}") from None

    def close(self) -> None:
        pass
