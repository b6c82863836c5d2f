"""The OpenAI-compatible HTTP front of a policy: `GET /v1/models[/ID]`, `POST /v1/chat/completions` and
`POST /v1/completions` (`n`, `seed`, `stream`), on the standard library's threading HTTP server (no new dependency).
Bound to 127.0.0.1 unless told otherwise; with TTC_SERVE_API_KEY set, every request must carry
`Authorization: Bearer <key>` (the key is never logged nor stored). Errors are the API's error body with its status:
400 a request the server refuses (a bad `X-TTC-Budget` header too), 401 a missing or wrong key, 404 an unknown route
or model, 500 the engine's or the store's failure. A stream is answered whole first (backend/serving/wire.py says
why), so an error is still a plain JSON error, and a refused request writes nothing to the store."""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from backend.errors import SpecError, TtcError
from backend.serving.policy import Policy
from backend.serving.runtime import (
    BUDGET_HEADER,
    Budget,
    ChatRequest,
    CompletionRequest,
    Request,
    RequestError,
    Runtime,
    error_body,
    parse_budget,
    parse_request,
)
from backend.serving.wire import response_body, stream_chunks

API_KEY_ENV = "TTC_SERVE_API_KEY"
MAX_BODY_BYTES = 1 << 20
ROUTES: dict[str, type[Request]] = {"/v1/chat/completions": ChatRequest, "/v1/completions": CompletionRequest}


def make_server(runtime: Runtime, host: str = "127.0.0.1", port: int = 8000) -> Server:
    """The server, bound and not yet serving (port 0: a free port, `server.server_address[1]`)."""
    api_key = os.environ.get(API_KEY_ENV) or None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # one line per request on stderr, never a header
            print(f"{self.address_string()} {format % args}", file=sys.stderr)

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, e: RequestError) -> None:
            self._send(e.status, error_body(e))

        def _authorised(self) -> bool:
            if api_key is None:
                return True
            sent = self.headers.get("Authorization", "")
            if hmac.compare_digest(sent.encode(), f"Bearer {api_key}".encode()):
                return True
            self._error(
                RequestError(None, "a valid API key is required (Authorization: Bearer ...)", 401, "invalid_api_key")
            )
            return False

        def _stream(self, chunks) -> None:
            """Server-Sent Events in HTTP/1.1 chunked framing, one event per chunk, then `data: [DONE]`."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
            for event in events:
                self.wfile.write(f"{len(event):X}\r\n".encode() + event + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def _header_budget(self) -> Budget | None:
            text = self.headers.get(BUDGET_HEADER)
            if text is None:
                return None
            try:
                return parse_budget(text, BUDGET_HEADER)
            except SpecError as e:
                raise RequestError(BUDGET_HEADER, str(e)) from None

        def do_GET(self) -> None:
            if not self._authorised():
                return
            path = self.path.rstrip("/")
            now = int(time.time())
            models = {m: {"id": m, "object": "model", "created": now, "owned_by": "ttc-lab"} for m in runtime.model_ids}
            if path == "/v1/models":
                self._send(200, {"object": "list", "data": list(models.values())})
            elif path.startswith("/v1/models/"):
                name = path.removeprefix("/v1/models/")
                if name in models:
                    self._send(200, models[name])
                else:
                    self._error(RequestError("model", f"model: {name!r} is not served here", 404, "model_not_found"))
            else:
                self._error(RequestError(None, f"no route GET {self.path}", 404, "not_found"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, MAX_BODY_BYTES + 1))
            if not self._authorised():
                return
            kind = ROUTES.get(self.path.rstrip("/"))
            if kind is None:
                self._error(RequestError(None, f"no route POST {self.path}", 404, "not_found"))
                return
            if length > MAX_BODY_BYTES:
                self._error(RequestError(None, f"the request body is larger than {MAX_BODY_BYTES} bytes", 413))
                return
            try:
                body = json.loads(raw or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                self._error(RequestError(None, f"the request body is not JSON: {e}"))
                return
            try:
                request = parse_request(body, kind)
                answered = runtime.answer(request, self._header_budget())
            except RequestError as e:
                self._error(e)
                return
            except TtcError as e:  # the engine or the store failed: the server's fault, said in one line
                self._error(RequestError(None, str(e), 500, "server_error"))
                return
            if request.stream:
                self._stream(stream_chunks(answered, request))
            else:
                self._send(200, response_body(answered, request))

    return Server((host, port), Handler)


class Server(ThreadingHTTPServer):
    """A thread per connection; the listen backlog holds a burst of concurrent clients (the standard library's 5
    resets the rest: 32 clients connecting at once were refused)."""

    request_queue_size = 128


def serve(
    policy: Policy,
    store_dir: Path | None,
    catalog: str | None,
    host: str,
    port: int,
    concurrency: int | None = None,
    default_budget: Budget | None = None,
    reproducible: bool = False,
) -> int:
    """`ttc serve`: open the policy's engine and the store, then answer until interrupted."""
    from backend.serving.runtime import open_backend
    from store import Store

    backend = open_backend(policy, reproducible)  # before the store: a policy this machine cannot serve creates nothing
    try:
        runtime = Runtime(policy, backend, None, concurrency, default_budget)
        store = Store.open(store_dir, catalog=catalog)
        runtime.store = store
        server = make_server(runtime, host, port)
    except BaseException:
        backend.engine.close()
        raise
    print(
        f"serving policy {policy.version} ({policy.model}) on http://{host}:{server.server_address[1]}/v1, "
        f"{runtime.concurrency} request(s) at a time, writing to {store.root}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        backend.engine.close()
    return 0
