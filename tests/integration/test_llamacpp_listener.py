"""The embedded llama.cpp engine's HTTP listener (xllamacpp always starts one) is of no use to anyone: a unix socket
whose path is removed once the model is loaded, no TCP port, and a key nobody but the engine holds. Measured before
the fix: a random 127.0.0.1 port answering /completion, /v1/completions, /slots and /props to anyone on the machine.

The key is checked on the loopback port the engine falls back to where a socket path would not fit."""

from __future__ import annotations

import http.client
import json
import os
import tempfile
from urllib.parse import urlparse

import pytest

import backend.engines.llamacpp as llamacpp
from backend.engines.base import GenerationRequest, SamplingParams

pytestmark = pytest.mark.real_model

ENDPOINTS = [
    ("POST", "/completion", {"prompt": "Hello", "n_predict": 2}),
    ("POST", "/completions", {"prompt": "Hello", "n_predict": 2}),
    ("POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 2}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
    ("POST", "/tokenize", {"content": "Hello"}),
    ("GET", "/slots", None),
    ("GET", "/props", None),
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
]


def _engine(model, **patches):
    """An engine, and its key caught on the way in (held here only, never printed)."""
    keys: list[str] = []
    real = llamacpp.secrets.token_urlsafe

    def catch(nbytes=None):
        keys.append(real(nbytes))
        return keys[-1]

    mp = pytest.MonkeyPatch()
    mp.setattr(llamacpp.secrets, "token_urlsafe", catch)
    for name, value in patches.items():
        mp.setattr(llamacpp, name, value)
    try:
        engine = llamacpp.LlamaCppEngine(model, n_parallel=1, n_ctx_per_slot=256, threads=2)
    finally:
        mp.undo()
    return engine, (keys[0] if keys else None)


@pytest.fixture(scope="module")
def engine(model):
    eng, _ = _engine(model)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def tcp_engine_and_key(model):
    """The fallback where the socket path would not fit: a loopback port, behind the key."""
    eng, key = _engine(model, _SUN_PATH_MAX=0)
    yield eng, key
    eng.close()


def _connection(address: str) -> http.client.HTTPConnection:
    url = urlparse(address)
    if url.scheme == "unix":
        return llamacpp._UnixConnection(url.path)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)


def _request(address: str, method: str, path: str, body: dict | None, key: str | None) -> int:
    conn = _connection(address)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _tcp_listeners(pid: int) -> list[str]:
    """Local addresses of listening TCP sockets whose inode is one of the process's descriptors."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in list(f)[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    found.append(cols[1])
    return found


def test_only_this_user_reaches_the_socket_and_only_with_the_key(engine):
    """The engine counts prompt tokens through the listener's /tokenize, so its socket lives as long as the engine,
    in a directory only this user may enter (another user cannot even connect); a connection without the engine's
    key is refused on every endpoint but /health, and the socket answers with it."""
    import stat

    address = engine._server.listening_address
    url = urlparse(address)
    assert url.scheme == "unix", address
    folder = os.stat(os.path.dirname(url.path))
    assert stat.S_IMODE(folder.st_mode) == 0o700 and folder.st_uid == os.getuid()
    assert stat.S_ISSOCK(os.stat(url.path).st_mode)
    body = {"content": "1 + 1"}
    assert _request(address, "POST", "/tokenize", body, None) == 401
    assert _request(address, "POST", "/completion", {"prompt": "1", "n_predict": 1}, "sk-" + "0" * 40) == 401
    assert engine.count_tokens("1 + 1") > 0


def test_no_tcp_port_and_no_socket_directory_left_behind(model):
    ports, names = set(_tcp_listeners(os.getpid())), set(os.listdir(tempfile.gettempdir()))
    eng, _ = _engine(model)
    try:
        assert set(_tcp_listeners(os.getpid())) - ports == set()
    finally:
        eng.close()
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - names if n.startswith("ttc-llama-")}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_every_endpoint_refuses_without_the_key(tcp_engine_and_key, method, path, body):
    engine, key = tcp_engine_and_key
    address = engine._server.listening_address
    assert urlparse(address).hostname == "127.0.0.1"
    assert _request(address, method, path, body, None) == 401
    assert _request(address, method, path, body, "sk-" + "0" * 40) == 401
    assert key is not None
    assert _request(address, method, path, body, key[:-1]) == 401
    assert _request(address, method, path, body, key) != 401  # the listener is the server, and the key is the gate


def test_health_answers_without_the_key_and_says_nothing_more(tcp_engine_and_key):
    engine, _ = tcp_engine_and_key
    conn = _connection(engine._server.listening_address)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
    finally:
        conn.close()


@pytest.mark.parametrize("which", ["unix", "tcp"])
def test_in_process_generation_still_works(engine, tcp_engine_and_key, which):
    eng = engine if which == "unix" else tcp_engine_and_key[0]
    params = SamplingParams(temperature=0.0, max_tokens=4, seed=0)
    [[completion]] = eng.generate([GenerationRequest("The capital of France is", params)])
    assert completion.completion_tokens > 0 and completion.text
