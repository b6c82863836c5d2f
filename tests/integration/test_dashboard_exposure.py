"""The dashboard listens on loopback only and sends no usage statistics, wherever `ttc dashboard` is started from;
listening on a network address is an explicit `--expose ADDRESS`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from backend.cli import streamlit_command
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_command_binds_loopback_and_sends_no_statistics_unless_exposed():
    cmd = streamlit_command(8501)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    exposed = streamlit_command(8501, expose="0.0.0.0")
    assert exposed[exposed.index("--server.address") + 1] == "0.0.0.0"


def test_a_dashboard_started_elsewhere_is_unreachable_from_the_network(tmp_path):
    outward = _outward_address()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "dashboard", "--headless", "--no-worker", "--port", str(port)],
        cwd=tmp_path,  # not the project: .streamlit/config.toml is not read from here
        env={**os.environ, "PYTHONPATH": str(ROOT), "TTC_STORE": str(tmp_path / "store")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _accepts("127.0.0.1", port):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the dashboard never listened on 127.0.0.1"
            time.sleep(0.2)
        if outward is None:
            pytest.skip("this machine has no non-loopback address to try the dashboard from")
        assert not _accepts(outward, port), f"the dashboard answers on {outward}:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
