"""Real local servers for integration tests, after vLLM's `tests/utils.py::RemoteOpenAIServer`: start the server in
a subprocess on a free loopback port, wait on `/health`, hand out the base URL, kill it on exit.

Run as a script, this file *is* the server: llama.cpp's HTTP server through xllamacpp, bound to 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppHTTPServer:
    """`with LlamaCppHTTPServer(gguf_path) as srv: srv.base_url` -> "http://127.0.0.1:PORT/v1". With `api_key`, every
    endpoint but /health answers 401 unless sent `Authorization: Bearer <api_key>` (handed over in the environment,
    not on the command line, where any local user could read it)."""

    def __init__(
        self,
        model_path: Path | str,
        n_parallel: int = 4,
        n_ctx_per_slot: int = 1024,
        seed: int = 0,
        startup_timeout_s: float = 60,
        api_key: str | None = None,
    ):
        self.model_path = str(model_path)
        self.api_key = api_key
        self.n_parallel, self.n_ctx_per_slot, self.seed = n_parallel, n_ctx_per_slot, seed
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LlamaCppHTTPServer:
        cmd = [
            sys.executable,
            __file__,
            self.model_path,
            str(self.port),
            str(self.n_parallel),
            str(self.n_ctx_per_slot),
            str(self.seed),
        ]
        self._log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llamacpp-http-{self.port}.log", "w+b")
        env = {k: v for k, v in os.environ.items() if k != _KEY_ENV}
        if self.api_key:
            env[_KEY_ENV] = self.api_key
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp HTTP server exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.root_url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:  # refused while starting, 503 while loading the model
                pass
            time.sleep(0.2)
        raise RuntimeError(f"llama.cpp HTTP server not healthy after {self.startup_timeout_s} s:\n{self._tail()}")

    def _tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-2000:]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


_KEY_ENV = "TTC_TEST_SERVER_API_KEY"


def _serve(model_path: str, port: int, n_parallel: int, n_ctx_per_slot: int, seed: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_parallel = n_parallel
    params.n_ctx = n_ctx_per_slot * n_parallel
    params.sampling.seed = seed
    params.cpuparams.n_threads = os.cpu_count() or 2
    params.cpuparams_batch.n_threads = os.cpu_count() or 2
    params.warmup = False
    params.verbosity = 0
    if os.environ.get(_KEY_ENV):
        params.api_keys = [os.environ.pop(_KEY_ENV)]
    server = xllamacpp.Server(params)  # starts listening; lives as long as this process
    print(f"listening on {server.listening_address}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    path, port, n_parallel, n_ctx, seed = sys.argv[1:6]
    _serve(path, int(port), int(n_parallel), int(n_ctx), int(seed))
