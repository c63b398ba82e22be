"""Per-run control groups: one memory and one process budget for everything a sandboxed run starts.

rlimits count per process (memory) or per user (processes): four processes of
one run could each take the whole memory limit, and a fork bomb in one run, as
user ``nobody``, left concurrent runs of the same user unable to start. A
control group made for each run, below the one t2reg itself runs in, caps the
run's processes together (``memory`` and ``pids`` controllers) and nothing
else: runs never share a budget.

cgroup v1 (a ``memory`` and a ``pids`` hierarchy) is used where both are
mounted, else cgroup v2 where the memory and pids controllers can be enabled
below t2reg's own group. Making groups needs write access there (root, or a
delegated subtree); :func:`hierarchy` probes once and says why not otherwise.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("t2reg.sandbox")
_NAME = re.compile(r"t2reg-(\d+)-\d+")
_counter = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """Where this process makes its run groups: one folder per v1 hierarchy (memory, pids), or one for v2."""

    version: int
    parents: tuple[Path, ...]

    def describe(self) -> str:
        return f"cgroup v{self.version} ({', '.join(str(p) for p in self.parents)})"


@dataclass(frozen=True)
class Unavailable:
    """Why no run group can be made here."""

    reason: str


@dataclass
class RunGroup:
    """The control group(s) of one run: join them before the run starts, close them after it ends."""

    version: int
    folders: tuple[Path, ...]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The files a process writes to, to join (prepared here, written in the child before exec).

        v1: ``tasks``, the calling thread alone. The child is single-threaded then, so that moves the whole
        process, and moving only the current thread spares the kernel's global migration lock (an RCU
        grace period per hierarchy, ~10 ms each, on every run). v2: ``cgroup.procs``."""
        name = "tasks" if self.version == 1 else "cgroup.procs"
        return tuple(str(f / name) for f in self.folders)

    def peak_memory_bytes(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.folders[0] / name).read_text())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Kill whatever is left in the group and remove it (a group that will not go is left, and said)."""
        for folder in self.folders:
            _empty(folder)
            _remove(folder)


def join(procs_files: tuple[str, ...]) -> None:
    """Move the calling process into a run group (called in the child between fork and exec)."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # 0: the writer itself
        finally:
            os.close(fd)


def new_group(where: Hierarchy, memory_bytes: int, processes: int) -> RunGroup:
    """A fresh group capping memory (swap included) and processes (threads count) of a whole run."""
    name = f"t2reg-{os.getpid()}-{next(_counter)}"
    folders = tuple(parent / name for parent in where.parents)
    made: list[Path] = []
    try:
        for folder in folders:
            folder.mkdir()
            made.append(folder)
        if where.version == 1:
            memory, pids = folders
            _write(memory / "memory.limit_in_bytes", memory_bytes)
            _write_if_there(memory / "memory.memsw.limit_in_bytes", memory_bytes)  # no swap past the limit
            _write(pids / "pids.max", processes)
        else:
            (folder,) = folders
            _write(folder / "memory.max", memory_bytes)
            _write_if_there(folder / "memory.swap.max", 0)
            _write(folder / "pids.max", processes)
    except OSError:
        for folder in made:
            _remove(folder)
        raise
    return RunGroup(where.version, folders)


@functools.lru_cache(maxsize=1)
def hierarchy() -> Hierarchy | Unavailable:
    """Where run groups can be made here (checked once by making one), or why they cannot."""
    mounts = _cgroup_mounts()
    own = _own_groups()
    found: Hierarchy | Unavailable
    v1 = [_folder(mounts.get(c), own.get(c)) for c in ("memory", "pids")]
    if all(v1):
        found = Hierarchy(1, tuple(v1))  # type: ignore[arg-type]
    else:
        found = _v2(mounts.get("unified"), own.get("unified"))
    if isinstance(found, Unavailable):
        return found
    for parent in found.parents:
        _remove_stale(parent)
    try:
        new_group(found, 64 << 20, 8).close()
    except OSError as exc:
        return Unavailable(f"cannot make a control group in {found.describe()}: {exc.strerror or exc}")
    return found


def _v2(mount: tuple[Path, str] | None, own: str | None) -> Hierarchy | Unavailable:
    folder = _folder(mount, own)
    if folder is None:
        return Unavailable("neither cgroup v1 memory and pids hierarchies nor cgroup v2 are mounted")
    try:
        available = (folder / "cgroup.controllers").read_text().split()
        enabled = (folder / "cgroup.subtree_control").read_text().split()
    except OSError as exc:
        return Unavailable(f"cannot read {folder}: {exc.strerror or exc}")
    missing = {"memory", "pids"} - set(available)
    if missing:
        return Unavailable(f"cgroup v2 at {folder} lacks the {' and '.join(sorted(missing))} controller")
    wanted = [c for c in ("memory", "pids") if c not in enabled]
    if wanted:
        try:
            _write(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        except OSError as exc:
            # EBUSY: our own group holds processes, so it may not have controlled children (v2's rule).
            return Unavailable(f"cannot enable {', '.join(wanted)} below {folder}: {exc.strerror or exc}")
    return Hierarchy(2, (folder,))


def _cgroup_mounts() -> dict[str, tuple[Path, str]]:
    """Controller (``unified`` for v2) -> (mount point, the group path the mount shows as its root)."""
    found: dict[str, tuple[Path, str]] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point, fstype, options = fields[3], Path(fields[4]), tail[0], tail[2].split(",")
        if fstype == "cgroup2":
            found.setdefault("unified", (point, root))
        elif fstype == "cgroup":
            for controller in ("memory", "pids"):
                if controller in options:
                    found.setdefault(controller, (point, root))
    return found


def _own_groups() -> dict[str, str]:
    """Controller (``unified`` for v2) -> the group this process is in."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            found["unified"] = path
        for controller in controllers.split(","):
            if controller in ("memory", "pids"):
                found[controller] = path
    return found


def _folder(mount: tuple[Path, str] | None, own: str | None) -> Path | None:
    """The folder of our own group under its mount, when it is visible there."""
    if mount is None or own is None:
        return None
    point, root = mount
    relative = os.path.relpath(own, root)
    if relative.startswith(".."):
        return None
    folder = (point / relative).resolve() if relative != "." else point
    return folder if folder.is_dir() else None


def _write(path: Path, value: int | str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _write_if_there(path: Path, value: int | str) -> None:
    if path.exists():
        _write(path, value)


def _pids(folder: Path) -> list[int]:
    try:
        return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _empty(folder: Path, seconds: float = 5.0) -> None:
    """Kill every process in the group until none is left (a fork bomb keeps forking while it is killed)."""
    kill = folder / "cgroup.kill"
    deadline = time.monotonic() + seconds
    while (pids := _pids(folder)) and time.monotonic() < deadline:
        if kill.exists():
            _try(lambda: _write(kill, 1))
        else:
            for pid in pids:
                _try(lambda pid=pid: os.kill(pid, signal.SIGKILL))
        time.sleep(0.01)


def _remove(folder: Path) -> None:
    for delay in (0.0, 0.01, 0.05, 0.2, 0.5):
        time.sleep(delay)
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            continue  # EBUSY: the last processes are still being reaped
    log.warning("could not remove the run's control group %s; it is removed when t2reg next starts", folder)


def _remove_stale(parent: Path) -> None:
    """Groups left by t2reg processes that died without closing them (kill -9): empty, so removable."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match and not _alive(int(match.group(1))) and not _pids(entry):
            _try(entry.rmdir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try(action) -> None:
    try:
        action()
    except OSError:
        pass
