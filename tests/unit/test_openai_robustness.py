"""The OpenAI-compatible engine against a scripted stub server on a loopback port: which failures it retries and
how often, the one-line errors it ends with, the request body and headers it sends, and its options."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.engines import OpenAIOptions, engine_options
from backend.engines.base import GenerationRequest, SamplingParams
from backend.engines.openai_compat import OpenAICompatEngine
from backend.errors import EngineError, SpecError
from backend.ledger import ModelArch
from backend.models.registry import ResolvedModel
from tests.integration.servers import free_port

OK = {
    "choices": [{"text": "42", "finish_reason": "stop", "index": 0, "logprobs": None}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}
BAD_REQUEST = {"error": {"message": "max_tokens must be at least 1", "type": "BadRequestError", "code": 400}}


class StubServer:
    """Answers POST /v1/completions from a script of (status, body) steps, one per request, then `OK` for good;
    the step "hang" holds the request until the test ends. Records each request's headers and JSON body."""

    def __init__(self, *script):
        self.script = deque(script)
        self.requests: list[tuple[dict, dict]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append((dict(self.headers), body))
                    stub.paths.append(self.path)
                    step = stub.script.popleft() if stub.script else (200, OK)
                if step == "hang":
                    stub.release.wait(30)
                    return
                status, payload = step
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)  # quick to shut down

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def model() -> ResolvedModel:
    return ResolvedModel("m", None, ModelArch(n_params=1, n_layers=1, d_model=1), "chat", None)


def engine(base_url: str, **kw) -> OpenAICompatEngine:
    kw = {"n_parallel": 1, "timeout_s": 5, "backoff_s": 0.001, "backoff_max_s": 0.01, **kw}
    return OpenAICompatEngine(model(), base_url, **kw)


def one(eng: OpenAICompatEngine, **params):
    params = {"max_tokens": 3, "temperature": 0.7, "seed": 11, **params}
    return eng.generate([GenerationRequest("2 + 2 =", SamplingParams(**params))])[0][0]


def test_503_twice_then_success_is_retried():
    with StubServer((503, {"error": {"message": "loading model"}}), (503, "busy")) as srv:
        comp = one(engine(srv.base_url))
    assert (comp.text, comp.prompt_tokens, comp.completion_tokens) == ("42", 5, 3)
    assert len(srv.requests) == 3
    assert len({json.dumps(body, sort_keys=True) for _, body in srv.requests}) == 1  # the same request each time


def test_429_then_success_is_retried():
    with StubServer((429, {"error": {"message": "rate limited"}})) as srv:
        assert one(engine(srv.base_url)).text == "42"
    assert len(srv.requests) == 2


def test_persistent_5xx_gives_up_with_one_line_naming_url_last_failure_and_attempts():
    with StubServer(*[(502, {"error": {"message": "bad gateway"}})] * 10) as srv:
        with pytest.raises(EngineError) as err:
            one(engine(srv.base_url, retries=2))
    url = f"{srv.base_url}/completions"
    assert str(err.value) == f"m: POST {url} failed with HTTP 502: bad gateway (gave up after 3 attempts)"
    assert len(srv.requests) == 3


def test_400_fails_at_once_with_the_servers_message():
    with StubServer((400, BAD_REQUEST)) as srv:
        with pytest.raises(EngineError) as err:
            one(engine(srv.base_url))
    assert str(err.value) == f"m: POST {srv.base_url}/completions failed with HTTP 400: max_tokens must be at least 1"
    assert len(srv.requests) == 1


def test_404_unknown_model_is_not_retried():
    with StubServer((404, {"error": {"message": "The model `x` does not exist."}})) as srv:
        with pytest.raises(EngineError, match=r"failed with HTTP 404: The model `x` does not exist\.$"):
            one(engine(srv.base_url, served_model="x"))
    assert len(srv.requests) == 1


def test_a_hanging_server_times_out_and_each_attempt_is_retried():
    with StubServer("hang", "hang") as srv:
        with pytest.raises(EngineError) as err:
            one(engine(srv.base_url, timeout_s=0.2, retries=1))
        assert len(srv.requests) == 2
    assert str(err.value) == f"m: POST {srv.base_url}/completions timed out after 0.2 s (gave up after 2 attempts)"


def test_a_hang_then_success_recovers():
    with StubServer("hang") as srv:
        assert one(engine(srv.base_url, timeout_s=0.2)).text == "42"
    assert len(srv.requests) == 2


def test_nothing_listening_is_retried_then_named():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EngineError) as err:
        one(engine(url, retries=3))
    msg = str(err.value)
    assert msg.startswith(f"m: cannot reach {url}/completions: ") and "refused" in msg.lower()
    assert msg.endswith("(gave up after 4 attempts)") and "\n" not in msg


def test_no_retries_means_one_attempt():
    with StubServer((503, "down"), (503, "down")) as srv:
        with pytest.raises(EngineError, match=r"HTTP 503: down \(gave up after 1 attempt\)$"):
            one(engine(srv.base_url, retries=0))
    assert len(srv.requests) == 1


def test_the_body_samples_untruncated_with_the_seed_and_served_model():
    with StubServer() as srv:
        eng = engine(srv.base_url, served_model="Qwen/Qwen2.5-0.5B")
        eng.generate([GenerationRequest("p", SamplingParams(max_tokens=3, temperature=0.7, seed=11), n=2)])
        one(engine(srv.base_url))
    bodies = [body for _, body in srv.requests]
    assert sorted(b["seed"] for b in bodies[:2]) == [11, 12]
    for b in bodies:
        assert (b["top_k"], b["min_p"], b["repetition_penalty"], b["temperature"], b["max_tokens"]) == (
            0,
            0.0,
            1.0,
            0.7,
            3,
        )
    assert [b["model"] for b in bodies] == ["Qwen/Qwen2.5-0.5B"] * 2 + ["m"]  # default: the registry name


def test_the_api_key_comes_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv("TTC_TEST_OPENAI_KEY", "sk-test-123")
    with StubServer() as srv:
        one(engine(srv.base_url, api_key_env="TTC_TEST_OPENAI_KEY"))
        one(engine(srv.base_url))
    (with_key, _), (without, _) = srv.requests
    assert with_key["Authorization"] == "Bearer sk-test-123"
    assert "Authorization" not in without


def test_an_unset_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("TTC_TEST_OPENAI_KEY", raising=False)
    with pytest.raises(EngineError, match=r"^engine\.api_key_env: environment variable TTC_TEST_OPENAI_KEY is not set"):
        engine("http://127.0.0.1:1/v1", api_key_env="TTC_TEST_OPENAI_KEY")


def test_options_are_typed_and_reach_the_engine(monkeypatch):
    from backend.engines import create_engine

    monkeypatch.setenv("TTC_TEST_OPENAI_KEY", "sk-test-123")
    opts = engine_options(
        {
            "kind": "openai",
            "base_url": "http://127.0.0.1:1/v1",
            "timeout_s": 30,
            "retries": 5,
            "served_model": "served",
            "api_key_env": "TTC_TEST_OPENAI_KEY",
        }
    )
    assert isinstance(opts, OpenAIOptions)
    assert "sk-test-123" not in opts.model_dump_json()  # the spec (and so the store) holds the variable's name only
    eng = create_engine(model(), opts)
    assert (eng.timeout_s, eng.retries, eng.served_model) == (30, 5, "served")
    assert eng._headers["Authorization"] == "Bearer sk-test-123"

    defaults = engine_options({"kind": "openai", "base_url": "http://x/v1"})
    assert (defaults.timeout_s, defaults.retries, defaults.served_model, defaults.api_key_env) == (600, 3, None, None)
    for bad in ({"retries": 11}, {"retries": -1}, {"timeout_s": 0}, {"api_key_env": "not a name"}):
        with pytest.raises(SpecError, match=rf"^engine\.{next(iter(bad))}: "):
            engine_options({"kind": "openai", "base_url": "http://x/v1", **bad})


def test_backoff_doubles_is_capped_and_honours_retry_after_within_the_cap():
    eng = engine("http://127.0.0.1:1/v1", backoff_s=0.5, backoff_max_s=8)
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0), (9, 8.0)):
        waits = [eng._delay(attempt, None) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits)
    assert eng._delay(1, 3.0) == 3.0
    assert eng._delay(1, 60.0) == 8


def test_count_tokens_asks_the_servers_tokenizer_and_falls_back_to_a_byte_bound():
    """llama.cpp's server answers /tokenize with its tokens, vLLM's with a count; a server without the route gets
    the UTF-8 byte bound from then on, and says so (exact_token_counts)."""
    with StubServer((200, {"tokens": [1, 2, 3]}), (200, {"count": 7, "tokens": [0] * 7}), (404, {"error": "no"})) as s:
        e = engine(s.base_url)
        assert e.count_tokens("abc") == 3 and e.count_tokens("abcdefg") == 7 and e.exact_token_counts
        assert s.paths == ["/tokenize", "/tokenize"] and s.requests[0][1]["add_special"] is True
        assert e.count_tokens("héllo") == len("héllo".encode()) and not e.exact_token_counts
        assert e.count_tokens("again") == 5 and len(s.paths) == 3  # no more asking
