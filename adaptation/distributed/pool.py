"""The replicas of one job: started together, handed work one piece at a time, restarted when they die.

:meth:`ReplicaPool.run` takes a list of calls (each turns a replica into a pending result) and keeps
every live replica busy with exactly one: a replica that finishes takes the next piece, so fast and
slow replicas balance. A replica that dies (``ray.kill``, a crashed worker, a lost node) has its piece
put back at the head of the queue for whichever replica is free next, and is replaced by a fresh actor
while its restart budget lasts (``T2REG_RAY_RESTARTS``, default 2 per replica), then dropped. Results come
back in the order of the calls, whoever computed them, so a run with dead replicas returns what a run
without them returns. When no replica is left, or Ray itself is gone, :class:`~t2reg.errors.ClusterError`
fails the job; its checkpoints stay, and ``t2reg jobs resume`` continues it.

An error raised by our own code inside a replica (a bad input, a missing file) is not a lost replica:
rerunning it elsewhere would fail the same way, so it is raised here as the original error.

Every replica's share of the work is counted (pieces, units such as candidates or questions, seconds
in the model, round-trip seconds), and :meth:`ReplicaPool.report` turns it into per-replica
throughput for job events and progress bars.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

from t2reg.adaptation.distributed.cluster import connect, place, require_ray
from t2reg.adaptation.distributed.replica import Replica, ReplicaSetup, Shared, Timed
from t2reg.adaptation.distributed.settings import ReplicaSettings
from t2reg.errors import ClusterError, InvalidInputError, Remedy

RESTARTS_ENV = "T2REG_RAY_RESTARTS"
DEFAULT_RESTARTS = 2
ACTOR_PREFIX = "t2reg-replica"

Call = Callable[[Any], Any]  # a replica's actor handle -> the ObjectRef of its answer (a Timed)


START_TIMEOUT_ENV = "T2REG_RAY_START_TIMEOUT"
DEFAULT_START_TIMEOUT_S = 900.0  # placing the actors and loading a large model on each
# A job that lost its cluster is checkpointed; the pool does not know its id, so the command names it JOB.
RESUME = Remedy("continue it from its last completed step", ("jobs", "resume"), ("JOB",))


def restart_budget() -> int:
    """Fresh actors each replica may get after dying (``T2REG_RAY_RESTARTS``)."""
    return int(_env_number(RESTARTS_ENV, DEFAULT_RESTARTS))


def start_timeout() -> float:
    """Seconds the replicas may take to be placed and load their model (``T2REG_RAY_START_TIMEOUT``)."""
    return _env_number(START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_S)


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number < 0:
        raise InvalidInputError(f"{name} must be a number of at least 0, not {value!r}")
    return number


@dataclass
class ReplicaStats:
    """One replica's work since the last report."""

    pieces: int = 0
    units: int = 0
    model_seconds: float = 0.0
    round_trip_seconds: float = 0.0


@dataclass
class _Slot:
    index: int
    actor: Any
    restarts: int = 0
    alive: bool = True
    busy: bool = False
    where: str = ""
    stats: ReplicaStats = field(default_factory=ReplicaStats)

    @property
    def label(self) -> str:
        return f"r{self.index}"


class ReplicaPool:
    """``settings.replicas`` actors holding the model of ``setup``; use it as a context manager."""

    def __init__(self, setup: ReplicaSetup, settings: ReplicaSettings, device: str | None = None,
                 restarts: int | None = None) -> None:
        self.setup, self.settings, self.device = setup, settings, device
        self.restarts = restart_budget() if restarts is None else restarts
        self.id = uuid.uuid4().hex[:8]
        self.slots: list[_Slot] = []
        self.lost: list[str] = []  # why replicas died, newest last
        self._window = time.perf_counter()
        self._remote: Any = None
        self._options: dict[str, Any] = {}
        # Called with (replica label, call index) after each piece of work comes back.
        self.on_result: Callable[[str, int], None] | None = None

    # -- life ----------------------------------------------------------------------------------

    def __enter__(self) -> "ReplicaPool":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> "ReplicaPool":
        """Connect, place and start the replicas, and wait until each has loaded its model."""
        ray = require_ray()
        connect(self.settings)
        placement = place(self.settings, self.device)
        self.setup = replace(self.setup, device=placement.device, threads=self.settings.threads)
        self._remote = ray.remote(Replica)
        # Restarts are ours (a fresh actor, the piece rerun elsewhere), not Ray's: max_restarts=0.
        self._options = {"num_cpus": placement.num_cpus, "num_gpus": placement.num_gpus, "max_restarts": 0,
                         "max_concurrency": 1}
        self.slots = [_Slot(i, self._spawn(i, 0)) for i in range(self.settings.replicas)]
        for slot, ready in zip(self.slots, self._gather([s.actor.ready.remote() for s in self.slots])):
            slot.where = ready["replica"]
        self._window = time.perf_counter()
        return self

    def close(self) -> None:
        """Kill every replica (their work is done or abandoned)."""
        if not self.slots:
            return
        ray = require_ray()
        for slot in self.slots:
            if slot.alive:
                try:
                    ray.kill(slot.actor)
                except Exception:  # noqa: BLE001 - already gone, or the cluster is: nothing left to free
                    pass
            slot.alive = False

    def _spawn(self, index: int, incarnation: int) -> Any:
        # Named, so an operator (or a test) can find a job's replicas: ray.util.list_named_actors().
        name = f"{ACTOR_PREFIX}-{self.id}-r{index}.{incarnation}"
        return self._remote.options(name=name, **self._options).remote(self.setup)

    def _gather(self, refs: list[Any]) -> list[Any]:
        ray = require_ray()
        try:
            return ray.get(refs, timeout=start_timeout())
        except ray.exceptions.GetTimeoutError:
            free = {k: v for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}
            raise ClusterError(f"the replicas did not start within {start_timeout():.0f} s (free on the cluster: "
                               f"{free or 'nothing'}; other jobs may hold it; {START_TIMEOUT_ENV} waits longer)"
                               ) from None
        except ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from exc
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"a replica died while loading the model: {_first_line(exc)}") from exc

    # -- work ----------------------------------------------------------------------------------

    @property
    def live(self) -> int:
        return sum(slot.alive for slot in self.slots)

    def share(self, payload: Any) -> Shared:
        """``payload`` put into the object store once, for any number of calls."""
        return Shared(uuid.uuid4().hex, require_ray().put(payload))

    def run(self, calls: Sequence[Call], units: Sequence[int] | None = None) -> list[Any]:
        """Every call's answer, in the order of ``calls``."""
        results: list[Any] = [None] * len(calls)
        for index, value in self.completions(calls, units):
            results[index] = value
        return results

    def completions(self, calls: Sequence[Call], units: Sequence[int] | None = None) -> "Completions":
        """(index, answer) as each call completes: an iterable with a length, for progress bars."""
        return Completions(self, list(calls), list(units) if units is not None else [1] * len(calls))

    def _dispatch(self, calls: list[Call], units: list[int]) -> Iterator[tuple[int, Any]]:
        ray = require_ray()
        pending = deque(range(len(calls)))
        in_flight: dict[Any, tuple[_Slot, int, float]] = {}
        try:
            while pending or in_flight:
                for slot in self.slots:
                    if slot.alive and not slot.busy and pending:
                        index = pending.popleft()
                        in_flight[calls[index](slot.actor)] = (slot, index, time.perf_counter())
                        slot.busy = True
                if not in_flight:
                    raise ClusterError(self._all_lost(len(pending)), remedy=RESUME)
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                slot, index, sent = in_flight.pop(ref)
                slot.busy = False
                try:
                    timed: Timed = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise _cause(exc) from exc
                except _replica_lost_errors(ray) as exc:
                    pending.appendleft(index)  # rerun first, by whichever replica is free next
                    self._replace(slot, exc)
                    continue
                self._count(slot, timed, units[index], time.perf_counter() - sent)
                if self.on_result:
                    self.on_result(slot.label, index)
                yield index, timed.value
        except ClusterError:
            raise
        except (ray.exceptions.RaySystemError, ray.exceptions.LocalRayletDiedError, ConnectionError) as exc:
            raise ClusterError(f"lost the Ray cluster: {_first_line(exc)}; the job's completed steps are "
                               "checkpointed", remedy=RESUME) from exc

    def _replace(self, slot: _Slot, exc: BaseException) -> None:
        self.lost.append(f"{slot.label}: {_first_line(exc)}")
        try:
            require_ray().kill(slot.actor)  # an unreachable actor may still hold its CPUs or GPU
        except Exception:  # noqa: BLE001 - already dead, which is the usual case
            pass
        if slot.restarts >= self.restarts:
            slot.alive = False  # dropped: the others carry its share from now on
            return
        slot.restarts += 1
        slot.actor = self._spawn(slot.index, slot.restarts)  # loads its model on its first call

    def _all_lost(self, left: int) -> str:
        why = self.lost[-1] if self.lost else "none started"
        return (f"every replica of this job is gone ({len(self.lost)} lost, up to {self.restarts} restart(s) each; "
                f"last: {why}) with {left} piece(s) of work left; the job's completed steps are checkpointed")

    # -- throughput ----------------------------------------------------------------------------

    def _count(self, slot: _Slot, timed: Timed, units: int, round_trip: float) -> None:
        slot.where = timed.replica
        slot.stats.pieces += 1
        slot.stats.units += units
        slot.stats.model_seconds += timed.seconds
        slot.stats.round_trip_seconds += round_trip

    def report(self, reset: bool = True) -> list[dict[str, Any]]:
        """Per replica since the last report: units done, units per second of wall time, seconds in the
        model, and the overhead per unit (round trip minus model time)."""
        wall = max(time.perf_counter() - self._window, 1e-9)
        rows = []
        for slot in self.slots:
            s = slot.stats
            rows.append({"replica": slot.label, "where": slot.where, "alive": slot.alive, "restarts": slot.restarts,
                         "units": s.units, "per_second": s.units / wall, "model_seconds": s.model_seconds,
                         "overhead_per_unit": (s.round_trip_seconds - s.model_seconds) / s.units if s.units else None})
            if reset:
                slot.stats = ReplicaStats()
        if reset:
            self._window = time.perf_counter()
        return rows

    def describe(self) -> str:
        """Throughput so far in this window, for a progress bar: ``r0 2.1/s r1 1.9/s``."""
        wall = max(time.perf_counter() - self._window, 1e-9)
        return " ".join(f"{s.label} {s.stats.units / wall:.2f}/s" if s.alive else f"{s.label} gone"
                        for s in self.slots)


class Completions:
    """The answers of a :meth:`ReplicaPool.completions` run as they come; ``len()`` is the number of calls."""

    def __init__(self, pool: ReplicaPool, calls: list[Call], units: list[int]) -> None:
        self.pool, self.calls, self.units = pool, calls, units

    def __len__(self) -> int:
        return len(self.calls)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self.pool._dispatch(self.calls, self.units)


def _replica_lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """What a dead replica (not our code) looks like: its piece of work can run elsewhere."""
    e = ray.exceptions
    return (e.RayActorError, e.WorkerCrashedError, e.ObjectLostError, e.OutOfMemoryError, e.NodeDiedError)


def _cause(exc: Any) -> BaseException:
    """The error our code raised inside a replica (a T2RegError keeps its class and options)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else ClusterError(f"a replica failed: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def chunked(n: int, size: int) -> list[range]:
    """0..n in consecutive ranges of at most ``size``."""
    size = max(1, size)
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def even_chunks(n: int, pieces: int) -> list[range]:
    """0..n in about ``pieces`` consecutive ranges of near-equal size."""
    return chunked(n, math.ceil(n / max(1, pieces)) if n else 1)
