"""The OpenAI-compatible HTTP front of a policy: `GET /v1/models`, `POST /v1/chat/completions` (non-streaming), on
the standard library's threading HTTP server (no new dependency). Bound to 127.0.0.1 unless told otherwise; with
TTC_SERVE_API_KEY set, every request must carry `Authorization: Bearer <key>` (the key is never logged)."""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from backend.errors import TtcError
from backend.serving.policy import Policy
from backend.serving.runtime import RequestError, Runtime, error_body, parse_request

API_KEY_ENV = "TTC_SERVE_API_KEY"
MAX_BODY_BYTES = 1 << 20


def make_server(runtime: Runtime, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
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

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                now = int(time.time())
                data = [{"id": m, "object": "model", "created": now, "owned_by": "ttc-lab"} for m in runtime.model_ids]
                self._send(200, {"object": "list", "data": data})
            else:
                self._error(RequestError(None, f"no route GET {self.path}", 404, "not_found"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, MAX_BODY_BYTES + 1))
            if not self._authorised():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
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
                self._send(200, runtime.answer(parse_request(body)))
            except RequestError as e:
                self._error(e)
            except TtcError as e:  # the engine or the store failed: the server's fault, said in one line
                self._error(RequestError(None, str(e), 500, "server_error"))

    return ThreadingHTTPServer((host, port), Handler)


def serve(policy: Policy, store_dir: Path | None, catalog: str | None, host: str, port: int) -> int:
    """`ttc serve`: open the policy's engine and the store, then answer until interrupted."""
    from backend.serving.runtime import open_backend
    from store import Store

    store = Store.open(store_dir, catalog=catalog)
    backend = open_backend(policy)
    server = make_server(Runtime(policy, backend, store), host, port)
    print(
        f"serving policy {policy.version} ({policy.model}) on http://{host}:{server.server_address[1]}/v1, "
        f"writing to {store.root}",
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
