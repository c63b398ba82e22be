"""Running untrusted generated code: a subprocess with limits, in its own temp dir.

Layers of containment, each cheap:

* a fresh temp dir as the working directory, removed afterwards;
* ``python -I`` with a minimal environment (no inherited secrets);
* resource limits: address space, CPU seconds, file size, open files, processes;
* a new session, so every process it starts is killed with one ``killpg``;
* when run as root, the child drops to ``nobody`` (root ignores RLIMIT_NPROC);
* a Python audit hook inside the child that refuses writes outside the temp
  dir and refuses starting processes, so a fork bomb or a stray write fails
  at once instead of being cleaned up afterwards.

It is a guard against careless or runaway code (the kind models write), not a
security boundary against a determined attacker: use a VM or container for that.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534

# Runs inside the child before the program: confine writes and process creation.
_GUARD = r'''
import os, sys
_ROOT = os.path.realpath(os.getcwd())
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path):
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep)

def _guard(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags & _WRITE_FLAGS)
        if writing and path is not None and not isinstance(path, int) and not _inside(path):
            raise PermissionError(f"sandbox: writing outside the working directory is not allowed: {path}")
    elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.link",
                   "os.symlink", "shutil.rmtree", "os.utime"):
        if args and not _inside(args[0]):
            raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
    elif event in ("os.rename", "os.replace"):
        if not (_inside(args[0]) and _inside(args[1])):
            raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
    elif event in ("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "subprocess.Popen", "os.kill", "os.killpg", "ctypes.dlopen", "socket.connect", "socket.bind"):
        raise PermissionError(f"sandbox: {event} is not allowed")

sys.addaudithook(_guard)
del _guard
'''


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30
    cpu_seconds: int = 10
    file_bytes: int = 16 << 20
    processes: int = 64
    open_files: int = 64


@dataclass(frozen=True)
class RunResult:
    passed: bool
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float


def run_program(source: str, limits: Limits = Limits()) -> RunResult:
    """Run ``source`` as a Python program; ``passed`` means it exited 0 within the limits."""
    workdir = Path(tempfile.mkdtemp(prefix="t2reg-sandbox-"))
    interpreter = _interpreter()
    drop = os.geteuid() == 0 and _usable_by_nobody(interpreter)
    if drop:
        os.chown(workdir, NOBODY, NOBODY)
    (workdir / "program.py").write_text(_GUARD + "\n" + source)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(workdir)}
    start = time.monotonic()
    proc = subprocess.Popen(
        [interpreter, "-I", "-S", "program.py"],  # -S: programs need only the standard library
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=lambda: _limit(limits, drop), close_fds=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        out, err = proc.communicate()
    finally:
        _kill_group(proc.pid)
        shutil.rmtree(workdir, ignore_errors=True)
    timed_out = timed_out or proc.returncode == -signal.SIGXCPU  # the CPU-seconds limit struck first
    return RunResult(
        passed=not timed_out and proc.returncode == 0,
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        stdout=out.decode("utf-8", "replace")[-4000:],
        stderr=err.decode("utf-8", "replace")[-4000:],
        seconds=time.monotonic() - start,
    )


def _interpreter() -> str:
    # As root we drop to nobody, who may not reach a venv or pyenv under /root;
    # a system Python of the same feature release runs the same standard library.
    if os.geteuid() == 0:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for candidate in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
            if os.path.isfile(candidate):
                return candidate
    return sys.executable


def _usable_by_nobody(interpreter: str) -> bool:
    real = os.path.realpath(interpreter)
    return all(os.stat(p).st_mode & 0o001 for p in _parents(real)) and os.stat(real).st_mode & 0o001 != 0


def _parents(path: str) -> list[str]:
    parts, current = [], os.path.dirname(path)
    while current not in ("/", ""):
        parts.append(current)
        current = os.path.dirname(current)
    return parts


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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
