"""Running jobs: the kinds a worker knows, one job under a claim, and the worker loop.

A job kind is a spec class (:class:`~t2reg.specs.JobSpec`): ``spec.run(context)``
does the work and returns the kind's record (:mod:`t2reg.records`), which the
job's row keeps. The work continues from ``context.state`` (its last checkpoint,
or None) and calls ``context.checkpoint(state, event)`` after every completed step. A
heartbeat thread keeps the claim alive during long steps; a checkpoint or
heartbeat that finds the claim gone (the job was cancelled, or another worker
took it over after a missed heartbeat) stops the work without writing
anything.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from t2reg.errors import ConflictError, Remedy, T2RegError
from t2reg.names import Names
from t2reg.registry import Registry
from t2reg.registry.entities import JobInfo
from t2reg.registry.jobs import Claim, ClaimLost
from t2reg.records import JobRecord
from t2reg.specs import JobSpec, Phases
from t2reg.enums import JobStatus

S = TypeVar("S", bound=JobSpec)


@dataclass(frozen=True)
class JobKind(Generic[S]):
    spec: type[S]  # its run() does the work, its record types the result

    @property
    def name(self) -> str:
        return self.spec.kind


_KINDS: Names[JobKind] = Names("job kind")


def register_job_kind(spec: type[S]) -> None:
    """Make ``spec.kind`` runnable (by ``spec.run``); specs of that kind are checked at submission."""
    _KINDS.add(spec.kind, JobKind(spec))


def job_kinds() -> list[str]:
    return _KINDS.names()


def job_kind(kind: str) -> JobKind:
    return _KINDS.get(kind)


def spec_of(job: JobInfo) -> JobSpec:
    """A job's stored spec, typed."""
    return job_kind(job.kind).spec.from_dict(job.spec)


def record_of(job: JobInfo) -> JobRecord | None:
    """A finished job's result, typed (None while it has none)."""
    return None if job.result is None else job_kind(job.kind).spec.record.from_dict(job.result)


@dataclass
class JobContext:
    """What a running job sees (a :class:`~t2reg.specs.JobRun`): the registry, its job, its last checkpoint,
    and a way to save the next."""

    registry: Registry
    job: JobInfo
    claim: Claim
    state: dict[str, Any] | None
    on_event: Callable[[dict[str, Any]], None] | None = None
    progress: Phases | None = None  # where a job run in the foreground shows its phases

    @property
    def job_id(self) -> int:
        return self.job.id

    def checkpoint(self, state: dict[str, Any], event: dict[str, Any] | None = None) -> None:
        """Store ``state`` (and one event with it) under the claim; raises ClaimLost if it is gone."""
        self.registry.jobs.checkpoint(self.claim, state, event)
        self.state = state
        if event is not None and self.on_event:
            self.on_event(event)


def submit(registry: Registry, spec: JobSpec) -> JobInfo:
    """Queue a job after checking its spec."""
    job_kind(spec.kind)
    spec.check(registry)
    return registry.jobs.submit(spec.kind, spec.to_dict())


def submit_here(registry: Registry, spec: JobSpec) -> tuple[Claim, JobInfo]:
    """Queue a job claimed by this process, to run here with :func:`run_job` (no worker can take it first)."""
    job_kind(spec.kind)
    spec.check(registry)
    return registry.jobs.submit_claimed(spec.kind, spec.to_dict(), worker_name())


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(registry: Registry, job_id: int, worker: str | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None, claim: Claim | None = None,
            progress: Phases | None = None) -> JobInfo:
    """Run job ``job_id`` here, in the foreground, to success; raises if it ends any other way.

    Without ``claim`` the job is claimed first (it must be queued, or abandoned by a dead worker)."""
    if claim is None:
        claimed = registry.jobs.claim(worker or worker_name(), job_id=job_id)
        if claimed is None:
            job = registry.jobs.get(job_id)
            raise ConflictError(f"job {job_id} is {job.status}" + _where(job) + "; only a queued job can be run",
                                remedy=Remedy("queue it again", ("jobs", "resume"), (str(job_id),)))
        claim = claimed[0]
    finished = _execute(registry, claim, registry.jobs.get(job_id), on_event=on_event, progress=progress)
    if finished.status != JobStatus.SUCCEEDED:  # cancelled, or taken over after a missed heartbeat, while it ran here
        raise ConflictError(f"job {job_id} stopped here without a result: it is {finished.status}{_where(finished)}")
    return finished


def _where(job: JobInfo) -> str:
    return f" on {job.worker}" if job.status == JobStatus.RUNNING else ""


def run_with_progress(registry: Registry, job_id: int, total: int | None = None, label: str = "job",
                      claim: Claim | None = None) -> JobInfo:
    """:func:`run_job` with a progress bar per step (showing the best score or reward so far), and one per
    batch for each phase of scoring after the last step."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=registry.jobs.get(job_id).events, desc=label, unit="step")

    def on_event(event: dict[str, Any]) -> None:
        bar.update(1)
        postfix = {}
        if event.get("best"):
            postfix["best"] = f"{event['best'][0]:.3f}"
        elif event.get("reward") is not None:
            postfix["reward"] = f"{event['reward']:+.2f}"
        if event.get("replicas"):  # a job spread over Ray replicas: each one's candidates per second
            postfix["per replica"] = " ".join(f"{r['per_second']:.2f}/s" for r in event["replicas"])
        bar.set_postfix(postfix)

    def phase(name: str) -> Callable[[Iterable], Iterable]:
        return lambda batches: tqdm(batches, desc=f"{label}: {name}", unit="batch", leave=False)

    try:
        return run_job(registry, job_id, on_event=on_event, claim=claim, progress=phase)
    finally:
        bar.close()


def work(registry: Registry, kinds: Sequence[str] | None = None, once: bool = False, poll: float = 2.0,
         worker: str | None = None, stop: threading.Event | None = None,
         on_job: Callable[[JobInfo], None] | None = None, overrides: Mapping[str, Any] | None = None) -> int:
    """Claim and run jobs until stopped (or, with ``once``, until the queue is empty). Returns jobs run.

    ``overrides`` are settings this worker imposes on every job whose spec has them (e.g. ``replicas``:
    every job it claims runs on that many Ray replicas); the stored spec is left as it was submitted."""
    for kind in kinds or ():
        job_kind(kind)
    worker = worker or worker_name()
    stop = stop or threading.Event()
    done = 0
    while not stop.is_set():
        claimed = registry.jobs.claim(worker, kinds or job_kinds())
        if claimed is None:
            if once:
                break
            stop.wait(poll)
            continue
        try:
            finished = _execute(registry, *claimed, overrides=overrides)
        except Exception:  # noqa: BLE001 - recorded on the job row; the worker goes on to the next job
            finished = registry.jobs.get(claimed[0].job_id)
        done += 1
        if on_job:
            on_job(finished)
    return done


def _execute(registry: Registry, claim: Claim, job: JobInfo, on_event: Callable[[dict[str, Any]], None] | None = None,
             overrides: Mapping[str, Any] | None = None, progress: Phases | None = None) -> JobInfo:
    kind = job_kind(job.kind)
    context = JobContext(registry, job, claim, job.state, on_event, progress)
    with _Heartbeat(registry, claim):
        try:
            spec = with_overrides(kind.spec.from_dict(job.spec), overrides)
            registry.jobs.finish(claim, spec.run(context).to_dict())
        except ClaimLost:
            pass  # cancelled, or taken over after a missed heartbeat: the row already says which
        except KeyboardInterrupt:
            _fail(registry, claim, "interrupted")
            raise
        except T2RegError as exc:
            _fail(registry, claim, str(exc))
            raise
        except Exception as exc:
            _fail(registry, claim, f"internal error: {type(exc).__name__}: {exc}")
            raise
    return registry.jobs.get(job.id)


def with_overrides(spec: S, overrides: Mapping[str, Any] | None) -> S:
    """``spec`` with the given settings it has replaced (None values and settings it lacks are ignored)."""
    names = {f.name for f in dataclasses.fields(spec)}
    changes = {k: v for k, v in (overrides or {}).items() if k in names and v is not None}
    if not changes:
        return spec
    changed = spec.replace(**changes)
    changed.validate()
    return changed


def _fail(registry: Registry, claim: Claim, error: str) -> None:
    try:
        registry.jobs.fail(claim, error)
    except ClaimLost:  # the job was cancelled or taken over meanwhile; that status stands
        pass


class _Heartbeat:
    """Touches the claim every timeout/4 seconds while a job runs."""

    def __init__(self, registry: Registry, claim: Claim) -> None:
        self.registry, self.claim = registry, claim
        self.interval = max(0.05, registry.jobs.timeout / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{claim.job_id}", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.registry.jobs.heartbeat(self.claim)
            except ClaimLost:
                return  # the job finds out at its next checkpoint
            except T2RegError:
                time.sleep(self.interval)  # a busy database: try again next beat
