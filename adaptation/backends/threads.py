"""How many threads torch gets: the cores this process may use that nobody else is using.

OpenMP threads wait for each other at every parallel region, so a thread on a
core another process keeps busy stalls all of them: on these 2-core machines,
with the second core busy, a 2-thread matmul took 20x longer than a 1-thread
one and a 4-row decode step of ``t2reg serve`` 1.7 s (bench/README.md). So the
count is the cores in this process's affinity mask less those other processes
kept busy over a short sample of ``/proc/stat`` (this process's own time is
not counted against it), at least 1.

``T2REG_THREADS=N`` fixes the count; ``OMP_NUM_THREADS`` set in the
environment is left alone (torch already read it). Ray replicas set their own
(``--threads``).
"""

from __future__ import annotations

import logging
import math
import os
import time

ENV = "T2REG_THREADS"
SAMPLE_S = 0.25  # long enough to see a busy core, short beside loading a model
# A core counts as free below this share of another process's use: a half-busy core already costs a
# thread that waits on it more than it gives.
BUSY_SHARE = 0.3

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; containers and `taskset` narrow it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_elsewhere(sample_s: float = SAMPLE_S) -> float:
    """Cores' worth of CPU time that other processes used over ``sample_s`` seconds (0 where the system does
    not say). Whole-machine figures: on a machine larger than the affinity mask it overstates."""
    first, own_first, start = _cpu_jiffies(), _own_seconds(), time.monotonic()
    if first is None:
        return max(0.0, os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    time.sleep(sample_s)
    second, own_second, elapsed = _cpu_jiffies(), _own_seconds(), time.monotonic() - start
    if second is None or elapsed <= 0:
        return 0.0
    return others_busy(second[0] - first[0], os.sysconf("SC_CLK_TCK"), own_second - own_first, elapsed)


def others_busy(busy_jiffies: int, hz: int, own_seconds: float, elapsed: float) -> float:
    """Cores' worth of time others were busy: every core's busy time less this process's own, per second."""
    return max(0.0, (busy_jiffies / hz - own_seconds) / elapsed)


def choose_threads(cores: int, busy: float) -> int:
    """``cores`` less the ones ``busy`` occupies (a core counts once it is more than BUSY_SHARE busy), at
    least 1."""
    return max(1, min(cores, cores - math.ceil(busy - BUSY_SHARE)))


def threads_wanted() -> int | None:
    """The thread count torch should use now; None where the environment already decided (OMP_NUM_THREADS)."""
    fixed = os.environ.get(ENV, "").strip()
    if fixed:
        try:
            value = int(fixed)
        except ValueError:
            value = 0
        if value < 1:
            from t2reg.errors import InvalidInputError

            raise InvalidInputError(f"{ENV} must be a whole number of threads, at least 1, not {fixed!r}")
        return value
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return choose_threads(usable_cores(), busy_elsewhere())


def use_free_cores() -> int:
    """Set torch's intra-op threads to :func:`threads_wanted` (called where a model is loaded); returns the
    count torch uses."""
    import torch

    wanted = threads_wanted()
    if wanted is not None and wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)
        log.info("torch uses %d thread(s) (%d usable cores)", wanted, usable_cores())
    return torch.get_num_threads()


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, from /proc/stat; None where it is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system
