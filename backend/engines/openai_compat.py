"""Any OpenAI-compatible `/v1/completions` server (llama.cpp's `llama-server`, `vllm serve`, ...) behind the
`Engine` protocol.

It is the embedded llama.cpp engine with the transport swapped: the same request body (`completion_body`), the
same one-completion-per-call fan-out with seed `seed + i` (`ThreadedEngineMixin`), the same choice parser
(`parse_choice`, which reads llama.cpp's `content` logprobs and the legacy `token_logprobs` that vLLM serves). The
standard library is enough for JSON over HTTP, so this engine adds no dependency."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from backend.engines.threaded import ThreadedEngineMixin
from backend.errors import EngineError
from backend.models.registry import ResolvedModel


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


class OpenAICompatEngine(ThreadedEngineMixin):
    """POSTs each completion to `{base_url}/completions`; `base_url` is what an OpenAI client takes, e.g.
    `http://127.0.0.1:8080/v1`. `served_model` is the `model` field sent (defaults to the model's name; `vllm
    serve` checks it against the name it serves, llama.cpp ignores it)."""

    def __init__(
        self,
        model: ResolvedModel,
        base_url: str,
        n_parallel: int = 4,
        api_key: str | None = None,
        timeout_s: float = 600,
        served_model: str | None = None,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise EngineError(
                f"engine.base_url: expected an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}"
            )
        if model.arch is None:
            raise EngineError(
                f"{model.name}: no architecture numbers for the FLOPs ledger (a Hugging Face id?); its FLOPs are counted from a GGUF's architecture numbers"
            )
        self.model = model
        self.name = model.name
        self.arch = model.arch
        self.n_parallel = n_parallel
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.served_model = served_model or model.name
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _complete_one(self, body: dict, slot: int) -> dict:
        # `slot` is not sent: pinning is llama.cpp-only (`id_slot`); a worker still sends related requests in order
        url = f"{self.base_url}/completions"
        data = json.dumps({**body, "model": self.served_model}).encode()
        req = urllib.request.Request(url, data=data, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            message = _server_message(e.read())
            raise EngineError(f"{self.name}: POST {url} failed with HTTP {e.code}: {message}") from None
        except urllib.error.URLError as e:
            raise EngineError(f"{self.name}: cannot reach {url}: {e.reason}") from None
        except TimeoutError:
            raise EngineError(f"{self.name}: POST {url} timed out after {self.timeout_s:g} s") from None
        except OSError as e:  # connection reset mid-response and the like
            raise EngineError(f"{self.name}: POST {url} failed: {e}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineError(f"{self.name}: {url} answered with non-JSON: {raw[:200]!r}") from None

    def close(self) -> None:
        pass
