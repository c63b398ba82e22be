"""Running untrusted generated code under OS isolation, and scoring it by a channel it cannot fake.

Isolation ``namespaces`` (the default) runs the program under bubblewrap
(``bwrap``, Debian package ``bubblewrap``), as an unprivileged user:

* new user, PID, network, IPC, UTS and cgroup namespaces: no network at all
  (not even the host's loopback), and every process the program starts lives
  in the PID namespace, which the kernel empties when its first process dies;
* a read-only root holding only ``/usr`` (and the interpreter's prefix), one
  writable, size-capped scratch folder (``/scratch``, also ``/tmp``), a minimal
  ``/dev`` and a private ``/proc``; the host's files, the registry included,
  are simply not there;
* run as the user ``nobody`` on the host too (when started as root, privileges
  are dropped before ``bwrap`` runs), so nothing it does is done as root;
* rlimits: address space, CPU seconds, file size, open files, processes;
* stdout and stderr are read as they come and capped (1 MiB by default): past
  the cap the run is killed; the wall-clock limit is enforced by killing the
  sandbox, never by waiting on pipes a straggler may hold.

Where bubblewrap or user namespaces are missing, :func:`run_program` refuses
(:class:`IsolationUnavailableError`) rather than run code unconfined. The old
``weak`` isolation (a subprocess with the same rlimits and an in-process audit
hook) is still there for such machines, only when asked for by name
(``isolation="weak"`` or ``T2REG_SANDBOX=weak``); it is not a security boundary.

Passing: the program and its tests run inside a small harness. The harness
reads a random nonce from a pipe (then closes it) before the program starts,
and writes it to a second pipe only after the last statement of the program
(tests included) has run. ``passed`` needs that nonce back, so ``raise
SystemExit(0)``, ``os._exit(0)`` or killing itself before the tests count as a
failure, whatever the exit code. (A program that deliberately searches its own
interpreter's memory for the nonce could still forge it: the channel closes the
shortcuts an optimiser stumbles on, not every door a determined author opens.)
"""

from __future__ import annotations

import functools
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from t2reg.errors import InvalidInputError, IsolationUnavailableError
from t2reg.settings import SANDBOX_ISOLATIONS, sandbox_isolation

NOBODY = 65534
SCRATCH = "/scratch"  # the one writable folder inside the sandbox (a size-capped tmpfs)
HARNESS_DIR = "/t2reg"  # read-only: the harness and the program
_TAIL = 4000  # characters of stdout and stderr kept in a result

# The harness: reads the nonce, runs the program, reports the nonce only if the program ran to its end.
_HARNESS = r'''
import os, sys

def _t2reg_main(nonce_fd, result_fd, path):
    nonce = os.read(nonce_fd, 256)
    os.close(nonce_fd)
    report = os.write  # bound now: the program may rebind os.write
    with open(path, "rb") as fh:
        code = compile(fh.read(), "program.py", "exec")
    sys.argv = ["program.py"]
    GUARD
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    report(result_fd, nonce)

_t2reg_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
'''

# Weak isolation only: an audit hook refusing writes outside the working folder and new processes.
_WEAK_GUARD = r'''
    def _install_guard(root=os.path.realpath(os.getcwd()), realpath=os.path.realpath, fsdecode=os.fsdecode,
                       sep=os.sep, flags=os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
        def inside(path):
            try:
                real = realpath(fsdecode(path))
            except (TypeError, ValueError):
                return False
            return real == root or real.startswith(root + sep)

        def guard(event, args):
            if event == "open":
                path, mode, oflags = args
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (oflags & flags)
                if writing and (path is None or isinstance(path, int) or not inside(path)):
                    raise PermissionError(f"sandbox: writing outside the working directory is not allowed: {path}")
            elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.link",
                           "os.symlink", "shutil.rmtree", "os.utime", "os.mkfifo", "os.mknod"):
                if not args or not inside(args[0]):
                    raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
            elif event in ("os.rename", "os.replace"):
                if not (inside(args[0]) and inside(args[1])):
                    raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
            elif event in ("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                           "subprocess.Popen", "os.kill", "os.killpg", "ctypes.dlopen", "socket.connect",
                           "socket.bind", "socket.sendto", "socket.sendmsg", "sqlite3.connect", "os.setsid"):
                raise PermissionError(f"sandbox: {event} is not allowed")

        sys.addaudithook(guard)

    _install_guard()
    del _install_guard
'''


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30
    cpu_seconds: int = 10
    file_bytes: int = 16 << 20
    processes: int = 64
    open_files: int = 64
    output_bytes: int = 1 << 20  # stdout and stderr together; past this the run is killed
    scratch_bytes: int = 64 << 20  # size of the writable scratch folder (namespaces isolation)


@dataclass(frozen=True)
class RunResult:
    passed: bool  # ran to its end (the harness's nonce came back), exit code 0, within every limit
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    completed: bool = False  # the harness reported the nonce: every statement of the program ran
    output_exceeded: bool = False
    isolation: str = ""


def run_program(source: str, limits: Limits = Limits(), isolation: str | None = None) -> RunResult:
    """Run ``source`` (a program and its tests) as a Python program, isolated; see the module docstring.

    ``isolation`` is ``namespaces`` or ``weak``; None reads ``T2REG_SANDBOX`` (default ``namespaces``).
    """
    mode = isolation or sandbox_isolation()
    if mode not in SANDBOX_ISOLATIONS:
        raise InvalidInputError(f"isolation must be one of {', '.join(SANDBOX_ISOLATIONS)}, not {mode!r}")
    plan = namespaces_plan() if mode == "namespaces" else weak_plan()
    staging = Path(tempfile.mkdtemp(prefix="t2reg-sandbox-"))
    nonce = secrets.token_hex(16).encode()
    nonce_r, nonce_w = os.pipe()
    result_r, result_w = os.pipe()
    start = time.monotonic()
    try:
        os.write(nonce_w, nonce)
        os.close(nonce_w)
        (staging / "harness.py").write_text(_HARNESS.replace("    GUARD", _WEAK_GUARD if plan.weak else "    pass"))
        (staging / "program.py").write_text(source)
        if plan.drop:
            for path in (staging, staging / "harness.py", staging / "program.py"):
                os.chown(path, NOBODY, NOBODY)
        argv = plan.argv(staging, [str(nonce_r), str(result_w)], limits)
        proc = subprocess.Popen(
            argv, cwd=staging, env=plan.env(staging), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(nonce_r, result_w), start_new_session=True, close_fds=True,
            preexec_fn=lambda: _limit(limits, plan.drop),
        )
        os.close(nonce_r)
        os.close(result_w)
        nonce_r = result_w = -1
        outcome = _supervise(proc, result_r, limits, plan.weak)
    finally:
        for fd in (nonce_r, result_w, result_r):
            if fd >= 0:
                _close(fd)
        shutil.rmtree(staging, ignore_errors=True)  # the folder this call made, nothing else
    timed_out = outcome.timed_out or proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU)
    completed = outcome.result == nonce
    return RunResult(
        passed=completed and not timed_out and not outcome.exceeded and proc.returncode == 0,
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        stdout=outcome.stdout.decode("utf-8", "replace")[-_TAIL:],
        stderr=outcome.stderr.decode("utf-8", "replace")[-_TAIL:],
        seconds=time.monotonic() - start,
        completed=completed,
        output_exceeded=outcome.exceeded,
        isolation=plan.name,
    )


def require_isolation(isolation: str | None = None) -> str:
    """Refuse now (before a long job starts) if generated code could not be run; return the isolation."""
    mode = isolation or sandbox_isolation()
    namespaces_plan() if mode == "namespaces" else weak_plan()
    return mode


# -- how a run is started -------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    name: str
    interpreter: str
    drop: bool  # drop to nobody before starting (we are root)
    weak: bool
    argv: Callable[[Path, list[str], Limits], list[str]]

    def env(self, staging: Path) -> dict[str, str]:
        home = SCRATCH if not self.weak else str(staging)
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "HOME": home}


@functools.lru_cache(maxsize=4)
def namespaces_plan(bwrap: str | None = None) -> _Plan:
    """How to run under bubblewrap here, checked once by running a trivial program; or why it cannot be done.

    ``bwrap`` names the executable (default: ``bwrap`` on PATH, else ``/usr/bin/bwrap``).
    """
    bwrap = bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
    bwrap = bwrap if os.path.isfile(bwrap) and os.access(bwrap, os.X_OK) else None
    hint = ("install bubblewrap (Debian: apt-get install bubblewrap), or accept running generated code without "
            "isolation by setting T2REG_SANDBOX=weak")
    if bwrap is None:
        raise IsolationUnavailableError(f"cannot run generated code isolated: bubblewrap (bwrap) is not installed; {hint}")
    interpreter, prefix = _interpreter()
    drop = os.geteuid() == 0
    binds = _system_binds() + (["--ro-bind", prefix, prefix] if not prefix.startswith("/usr/") else [])
    options = _bwrap_options(bwrap)

    def argv(staging: Path, args: list[str], limits: Limits) -> list[str]:
        return [
            bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", *options,
            "--uid", str(NOBODY), "--gid", str(NOBODY),
            *binds, "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
            "--size", str(limits.scratch_bytes), "--tmpfs", SCRATCH, "--symlink", SCRATCH, "/tmp",
            "--ro-bind", str(staging), HARNESS_DIR, "--chdir", SCRATCH, "--remount-ro", "/",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", SCRATCH, "--setenv", "TMPDIR",
            SCRATCH, "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--", interpreter, "-I", "-S", f"{HARNESS_DIR}/harness.py", *args, f"{HARNESS_DIR}/program.py",
        ]

    plan = _Plan("namespaces", interpreter, drop, False, argv)
    _probe(plan, hint)
    return plan


@functools.lru_cache(maxsize=1)
def weak_plan() -> _Plan:
    interpreter, _ = _interpreter()

    def argv(staging: Path, args: list[str], limits: Limits) -> list[str]:
        return [interpreter, "-I", "-S", "harness.py", *args, "program.py"]

    return _Plan("weak", interpreter, os.geteuid() == 0, True, argv)


def _interpreter() -> tuple[str, str]:
    """A Python of this feature release the sandbox user can run, and the prefix it needs; or a clear refusal."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    candidates = [(own, os.path.realpath(sys.base_prefix))]
    if os.geteuid() == 0:
        # As root we drop to nobody, who may not reach a pyenv under /root; a system Python of
        # the same feature release runs the same standard library.
        candidates = [(f"/usr/bin/{version}", "/usr"), (f"/usr/local/bin/{version}", "/usr/local"), *candidates]
    for interpreter, prefix in candidates:
        if os.path.isfile(interpreter) and (os.geteuid() != 0 or _usable_by_nobody(interpreter)):
            return os.path.realpath(interpreter), prefix
    raise IsolationUnavailableError(
        f"cannot run generated code as an unprivileged user: no {version} that user 'nobody' can run "
        f"(looked at {', '.join(c for c, _ in candidates)}); install {version} system-wide or run t2reg as a "
        "non-root user"
    )


def _usable_by_nobody(path: str) -> bool:
    real = os.path.realpath(path)
    folders = [p for p in Path(real).parents if str(p) != "/"]
    return all(os.stat(p).st_mode & 0o001 for p in folders) and os.stat(real).st_mode & 0o005 == 0o005


def _system_binds() -> list[str]:
    """``/usr`` read-only, and the top-level links (or folders) into it that programs expect."""
    binds = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            binds += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds += ["--ro-bind", top, top]
    return binds


def _bwrap_options(bwrap: str) -> list[str]:
    try:
        usage = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        usage = ""
    return ["--disable-userns"] if "--disable-userns" in usage else []  # no nested namespaces (bwrap >= 0.8)


def _probe(plan: _Plan, hint: str) -> None:
    staging = Path(tempfile.mkdtemp(prefix="t2reg-sandbox-probe-"))
    try:
        (staging / "harness.py").write_text("")
        (staging / "program.py").write_text("")
        if plan.drop:
            for path in (staging, staging / "harness.py", staging / "program.py"):
                os.chown(path, NOBODY, NOBODY)
        limits = Limits()
        try:
            probe = subprocess.run(plan.argv(staging, [], limits), cwd=staging, env=plan.env(staging),
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                                   preexec_fn=lambda: _limit(limits, plan.drop))
        except (OSError, subprocess.SubprocessError) as exc:
            raise IsolationUnavailableError(f"cannot start bubblewrap ({exc}); {hint}") from None
        if probe.returncode != 0:
            why = (probe.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            raise IsolationUnavailableError(f"bubblewrap cannot isolate here ({why}); {hint}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _limit(limits: Limits, drop: bool) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if drop:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


# -- watching a run ---------------------------------------------------------------


@dataclass
class _Outcome:
    stdout: bytes
    stderr: bytes
    result: bytes
    timed_out: bool
    exceeded: bool


_STRAGGLER_SECONDS = 0.5  # after the program exits, how long output still held open by a child is read


def _supervise(proc: subprocess.Popen, result_fd: int, limits: Limits, weak: bool) -> _Outcome:
    """Read stdout, stderr and the result pipe until the program is done, capping output and time.

    The run ends at the wall-clock limit, when output passes its cap, or shortly
    after the program exits; then the whole sandbox (namespace or process group)
    is killed, so no pipe held by a leftover process can keep this waiting.
    """
    buffers = {"out": bytearray(), "err": bytearray(), "result": bytearray()}
    selector = selectors.DefaultSelector()
    for name, fd in (("out", proc.stdout.fileno()), ("err", proc.stderr.fileno()), ("result", result_fd)):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, name)
    deadline = time.monotonic() + limits.wall_seconds
    exited_at: float | None = None
    timed_out = exceeded = False
    try:
        while selector.get_map() and not exceeded:
            now = time.monotonic()
            if now >= deadline:
                timed_out = proc.poll() is None
                break
            if proc.poll() is not None:
                exited_at = exited_at if exited_at is not None else now
                if now - exited_at > _STRAGGLER_SECONDS:
                    break
            for key, _ in selector.select(timeout=min(deadline - now, 0.05)):
                chunk = _read(key.fd)
                if chunk is None:  # nothing after all; still open
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = buffers[key.data]
                room = 256 - len(buffer) if key.data == "result" else limits.output_bytes - _used(buffers)
                buffer += chunk[: max(room, 0)]
                if key.data != "result" and len(chunk) > room:
                    exceeded = True
                    break
    finally:
        selector.close()
        _kill(proc, weak)
    return _Outcome(bytes(buffers["out"]), bytes(buffers["err"]), bytes(buffers["result"]), timed_out, exceeded)


def _used(buffers: dict[str, bytearray]) -> int:
    return len(buffers["out"]) + len(buffers["err"])


def _read(fd: int) -> bytes | None:
    """Up to 64 KiB from ``fd``; b"" at its end, None when it has nothing yet."""
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _kill(proc: subprocess.Popen, weak: bool) -> None:
    """Kill everything the run started, and return only once it is gone.

    Under bubblewrap the started process watches the sandbox's first process
    (PID 1 of its namespace). Killing that one makes the kernel kill every other
    process of the namespace, and it is reaped only after they are all gone; the
    watcher exits then, so waiting for the watcher waits for the whole sandbox.
    (Killing the watcher instead would return before the sandbox is empty.) In
    weak isolation the program leads its own process group, which is killed whole.
    """
    if weak:
        _signal(lambda: os.killpg(proc.pid, signal.SIGKILL))
    else:
        first = _children(proc.pid)
        for pid in first:
            _signal(lambda pid=pid: os.kill(pid, signal.SIGKILL))
        if not first:  # still setting up, or already done
            _signal(proc.kill)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _signal(send: Callable[[], None]) -> None:
    try:
        send()
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; empty where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        return []


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
