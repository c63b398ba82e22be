"""Running untrusted generated code under OS isolation.

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
* per-run limits: each run gets its own control group (:mod:`cgroups`) capping
  the memory and the number of processes of the whole run, so one run's fork
  bomb or four processes' allocations cannot starve another run; where no
  control group can be made (no write access to a cgroup hierarchy) the
  processes limit falls back to ``RLIMIT_NPROC``, which counts per host user,
  and a warning says so;
* rlimits: address space (per process, besides the run's memory cap), CPU
  seconds, file size, open files;
* stdout and stderr are read as they come and capped (1 MiB by default): past
  the cap the run is killed; the wall-clock limit is enforced by killing the
  sandbox, never by waiting on pipes a straggler may hold.

Where bubblewrap or user namespaces are missing, :func:`run_program` refuses
(:class:`IsolationUnavailableError`) rather than run code unconfined. The old
``weak`` isolation (a subprocess with the same limits and an in-process audit
hook) is still there for such machines, only when asked for by name
(``isolation="weak"`` or ``T2REG_SANDBOX=weak``); it is not a security boundary.

A run the machine could not start (bubblewrap failing to make its namespaces,
no process or control group to be had) is retried, then reported as
:class:`SandboxStartError`: the program never ran, so it is neither right nor
wrong. The harness (:mod:`harness`) marks the start on its report pipe before
any of the program runs, so a program cannot pass its own failure off as the
machine's.

:func:`run_program` runs a program to its end: the harness hands it a nonce it
reports after the last statement, so ``raise SystemExit(0)`` or ``os._exit(0)``
part way is not ``completed``. That is no verdict a program cannot forge (code
in the same interpreter can find the nonce); code tasks are scored by
:func:`run_probes` and :mod:`judge` instead, which take nothing from the run but
the values it reports and compare them outside it.
"""

from __future__ import annotations

import functools
import logging
import marshal
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
from typing import Callable, Sequence

from t2reg.adaptation.tasks import cgroups, harness
from t2reg.errors import InvalidInputError, IsolationUnavailableError, SandboxStartError
from t2reg.settings import SANDBOX_ISOLATIONS, sandbox_isolation

log = logging.getLogger("t2reg.sandbox")
NOBODY = 65534
SCRATCH = "/scratch"  # the one writable folder inside the sandbox (a size-capped tmpfs)
HARNESS_DIR = "/t2reg"  # read-only: the harness and the program
_TAIL = 4000  # characters of stdout and stderr kept in a result
_TRIES = (0.0, 0.25, 1.0)  # a run the machine did not start is tried again after these pauses


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30  # per process (address space), and for the whole run (control group)
    cpu_seconds: int = 10
    file_bytes: int = 16 << 20
    processes: int = 64  # the whole run's processes and threads (the sandbox's own two included)
    open_files: int = 64
    output_bytes: int = 1 << 20  # stdout and stderr together; past this the run is killed
    scratch_bytes: int = 64 << 20  # size of the writable scratch folder (namespaces isolation)
    report_bytes: int = 4 << 20  # what the harness may report (probe values); past this the run is killed


@dataclass(frozen=True)
class RunResult:
    passed: bool  # ran to its end (the harness's nonce came back), exit code 0, within every limit
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    completed: bool = False  # the harness reported the nonce: every statement of the program ran
    output_exceeded: bool = False  # stdout and stderr, or the report, passed their cap
    isolation: str = ""
    peak_memory_bytes: int | None = None  # the whole run's, where it had a control group


@dataclass(frozen=True)
class ProbeRun:
    """What a probes run reported (raw: :mod:`judge` decodes it) and how the run went."""

    report: bytes
    run: RunResult


def run_program(source: str, limits: Limits = Limits(), isolation: str | None = None) -> RunResult:
    """Run ``source`` (a program and its tests) as a Python program, isolated; see the module docstring.

    ``isolation`` is ``namespaces`` or ``weak``; None reads ``T2REG_SANDBOX`` (default ``namespaces``).
    """
    nonce = secrets.token_hex(16).encode()
    report, run = _run("program", {"program.py": source}, nonce, limits, isolation)
    completed = report == nonce
    passed = completed and not run.timed_out and not run.output_exceeded and run.returncode == 0
    return RunResult(passed, run.returncode, run.timed_out, run.stdout, run.stderr, run.seconds, completed,
                     run.output_exceeded, run.isolation, run.peak_memory_bytes)


def run_probes(program: str, steps: Sequence[tuple[str, str]], limits: Limits = Limits(),
               isolation: str | None = None) -> ProbeRun:
    """Run ``program``, then ``steps`` (``("run", statements)`` or ``("value", expression)``), isolated; the
    report holds one line per value step (see :mod:`harness`). ``passed`` and ``completed`` stay False:
    whether the values are right is decided outside, by whoever asked for them."""
    plan = marshal.dumps([(str(kind), str(source)) for kind, source in steps])  # read by the harness only
    report, run = _run("probes", {"program.py": program, "plan.marshal": plan}, b"", limits, isolation)
    return ProbeRun(report, run)


def require_isolation(isolation: str | None = None) -> str:
    """Refuse now (before a long job starts) if generated code could not be run; return the isolation."""
    mode = isolation or sandbox_isolation()
    namespaces_plan() if mode == "namespaces" else weak_plan()
    return mode


def per_run_limits() -> cgroups.Hierarchy | cgroups.Unavailable:
    """Where each run's control group is made, or why none can be (then ``RLIMIT_NPROC`` stands in)."""
    return cgroups.hierarchy()


# -- one run ----------------------------------------------------------------------


class _NotStarted(Exception):
    """The machine did not start the run: nothing of the program ran."""


def _run(mode: str, files: dict[str, str | bytes], secret: bytes, limits: Limits,
         isolation: str | None) -> tuple[bytes, RunResult]:
    """The harness's report (after its start marker) and the run, trying again a run the machine did not start."""
    chosen = isolation or sandbox_isolation()
    if chosen not in SANDBOX_ISOLATIONS:
        raise InvalidInputError(f"isolation must be one of {', '.join(SANDBOX_ISOLATIONS)}, not {chosen!r}")
    plan = namespaces_plan() if chosen == "namespaces" else weak_plan()
    why = ""
    for attempt, pause in enumerate(_TRIES, 1):
        time.sleep(pause)
        try:
            return _attempt(plan, mode, files, secret, limits)
        except _NotStarted as exc:
            why = str(exc)
            log.warning("a sandboxed run did not start (%s)%s", why, "; trying again" if attempt < len(_TRIES) else "")
    raise SandboxStartError(f"the sandbox did not start after {len(_TRIES)} tries ({why}); nothing of the "
                            "program ran, so it was not scored")


def _attempt(plan: _Plan, mode: str, files: dict[str, str | bytes], secret: bytes,
             limits: Limits) -> tuple[bytes, RunResult]:
    staging = Path(tempfile.mkdtemp(prefix="t2reg-sandbox-"))
    secret_r, secret_w = os.pipe()
    report_r, report_w = os.pipe()
    group: cgroups.RunGroup | None = None
    proc: subprocess.Popen | None = None
    start = time.monotonic()
    try:
        os.write(secret_w, secret)
        os.close(secret_w)
        secret_w = -1
        _stage(staging, {"harness.py": _harness_source(), **files}, plan.drop)
        where = _groups()
        try:
            group = cgroups.new_group(where, limits.memory_bytes, limits.processes) if where else None
            proc = subprocess.Popen(
                plan.argv(staging, [str(report_w), str(secret_r), plan.folder(staging), mode], limits),
                cwd=staging, env=plan.env(staging), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(secret_r, report_w), start_new_session=True, close_fds=True,
                preexec_fn=functools.partial(_limit, limits, plan.drop, group.procs_files if group else None),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise _NotStarted(f"cannot start the run: {exc}") from None
        for fd in (secret_r, report_w):
            os.close(fd)
        secret_r = report_w = -1
        outcome = _supervise(proc, report_r, limits, plan.weak)
        peak = group.peak_memory_bytes() if group else None
    finally:
        for fd in (secret_r, secret_w, report_w, report_r):
            if fd >= 0:
                _close(fd)
        if group is not None:
            group.close()
        shutil.rmtree(staging, ignore_errors=True)  # the folder this call made, nothing else
    if not outcome.report.startswith(harness.STARTED):
        err = outcome.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _NotStarted(err[-1][:300] if err else f"exit status {proc.returncode}, no message")
    timed_out = outcome.timed_out or proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU)
    run = RunResult(
        passed=False,
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        stdout=outcome.stdout.decode("utf-8", "replace")[-_TAIL:],
        stderr=outcome.stderr.decode("utf-8", "replace")[-_TAIL:],
        seconds=time.monotonic() - start,
        output_exceeded=outcome.exceeded,
        isolation=plan.name,
        peak_memory_bytes=peak,
    )
    return outcome.report[len(harness.STARTED):], run


@functools.lru_cache(maxsize=1)
def _harness_source() -> str:
    return Path(harness.__file__).read_text()


def _stage(staging: Path, files: dict[str, str | bytes], drop: bool) -> None:
    for name, content in files.items():
        if isinstance(content, bytes):
            (staging / name).write_bytes(content)
        else:
            (staging / name).write_text(content)
    if drop:  # the sandbox's user reads them
        for path in (staging, *(staging / name for name in files)):
            os.chown(path, NOBODY, NOBODY)


@functools.lru_cache(maxsize=1)
def _groups() -> cgroups.Hierarchy | None:
    """The hierarchy for run groups; None (said once) where there is none and rlimits stand in."""
    where = cgroups.hierarchy()
    if isinstance(where, cgroups.Unavailable):
        log.warning("no per-run memory and process limits (%s): memory is capped per process and processes "
                    "per user (RLIMIT_NPROC), so concurrent runs can starve each other", where.reason)
        return None
    return where


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

    def folder(self, staging: Path) -> str:
        """Where the harness finds the program, as it sees it."""
        return str(staging) if self.weak else HARNESS_DIR


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
            "--", interpreter, "-I", "-S", f"{HARNESS_DIR}/harness.py", *args,
        ]

    plan = _Plan("namespaces", interpreter, drop, False, argv)
    _probe(plan, hint)
    return plan


@functools.lru_cache(maxsize=1)
def weak_plan() -> _Plan:
    interpreter, _ = _interpreter()

    def argv(staging: Path, args: list[str], limits: Limits) -> list[str]:
        return [interpreter, "-I", "-S", "harness.py", *args, "weak"]

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
                                   preexec_fn=lambda: _limit(limits, plan.drop, None))
        except (OSError, subprocess.SubprocessError) as exc:
            raise IsolationUnavailableError(f"cannot start bubblewrap ({exc}); {hint}") from None
        if probe.returncode != 0:
            why = (probe.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            raise IsolationUnavailableError(f"bubblewrap cannot isolate here ({why}); {hint}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _limit(limits: Limits, drop: bool, group: tuple[str, ...] | None) -> None:
    """In the child, before exec: join the run's control group (while still root), set rlimits, drop to nobody."""
    if group is not None:
        cgroups.join(group)
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if drop:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    if group is None:  # counted per host user, shared by every run: only where no control group caps the run
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


# -- watching a run ---------------------------------------------------------------


@dataclass
class _Outcome:
    stdout: bytes
    stderr: bytes
    report: bytes
    timed_out: bool
    exceeded: bool


_STRAGGLER_SECONDS = 0.5  # after the program exits, how long output still held open by a child is read


def _supervise(proc: subprocess.Popen, report_fd: int, limits: Limits, weak: bool) -> _Outcome:
    """Read stdout, stderr and the report pipe until the program is done, capping output, report and time.

    The run ends at the wall-clock limit, when output passes its cap, or shortly
    after the program exits; then the whole sandbox (namespace or process group)
    is killed, so no pipe held by a leftover process can keep this waiting.
    """
    buffers = {"out": bytearray(), "err": bytearray(), "report": bytearray()}
    selector = selectors.DefaultSelector()
    for name, fd in (("out", proc.stdout.fileno()), ("err", proc.stderr.fileno()), ("report", report_fd)):
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
                room = (limits.report_bytes + len(harness.STARTED) - len(buffer) if key.data == "report"
                        else limits.output_bytes - _used(buffers))
                buffer += chunk[: max(room, 0)]
                if len(chunk) > room:
                    exceeded = True
                    break
    finally:
        selector.close()
        _kill(proc, weak)
    return _Outcome(bytes(buffers["out"]), bytes(buffers["err"]), bytes(buffers["report"]), timed_out, exceeded)


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
