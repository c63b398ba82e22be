"""The job queue: submit, claim, heartbeat, checkpoint, finish.

A claim is the pair (worker, attempt number); every write a worker makes
checks it still holds the claim, so a worker whose claim lapsed (no
heartbeat for ``timeout`` seconds, then taken over) or whose job was
cancelled learns so at its next checkpoint instead of overwriting anything.

Claiming is one write transaction that selects the oldest claimable row
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent workers skip each
other's rows instead of queueing); on SQLite the same statement runs inside
``BEGIN IMMEDIATE``, which already serialises writers, so the select-then-
update cannot interleave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from t2reg.errors import ConflictError, NotFoundError
from t2reg.registry.validation import INT_MAX, validate_count
from t2reg.registry.db import Database
from t2reg.registry.entities import JobEvent, JobInfo, as_utc
from t2reg.registry.orm import JobEventRow, JobRow, utcnow
from t2reg.enums import JobStatus

DEFAULT_TIMEOUT = 120.0
QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value
FINISHED = tuple(s.value for s in JobStatus if s.finished)


class ClaimLost(ConflictError):
    """The worker no longer holds the job: cancelled, or taken over after a missed heartbeat."""


@dataclass(frozen=True)
class Claim:
    job_id: int
    worker: str
    attempt: int


class JobQueue:
    """Jobs stored in the registry database."""

    def __init__(self, db: Database, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.db = db
        self.timeout = timeout

    # -- users ------------------------------------------------------------------

    def submit(self, kind: str, spec: dict[str, Any]) -> JobInfo:
        def work(session: Session) -> JobInfo:
            row = JobRow(kind=kind, status=QUEUED, spec=spec, attempts=0)
            session.add(row)
            session.flush()
            return row.to_entity()

        return self.db.write(work)

    def submit_claimed(self, kind: str, spec: dict[str, Any], worker: str) -> tuple[Claim, JobInfo]:
        """Queue a job already claimed by ``worker``: no other worker can take it before it starts."""

        def work(session: Session) -> tuple[Claim, JobInfo]:
            now = utcnow()
            row = JobRow(kind=kind, status=RUNNING, spec=spec, attempts=1, worker=worker, started_at=now,
                         heartbeat_at=now)
            session.add(row)
            session.flush()
            return Claim(row.id, worker, 1), row.to_entity()

        return self.db.write(work)

    def get(self, job_id: int) -> JobInfo:
        with self.db.session() as session:
            return _row(session, job_id).to_entity(_event_count(session, job_id))

    def list(self, status: str | None = None, kind: str | None = None, limit: int = 50) -> list[JobInfo]:
        validate_count(limit, "limit")
        if status is not None:
            status = JobStatus.parse(status, "job status").value
        query = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
        if status:
            query = query.where(JobRow.status == status)
        if kind:
            query = query.where(JobRow.kind == kind)
        with self.db.session() as session:
            rows = list(session.scalars(query))
            # every listed job's step count in one grouped query, not one count per job
            counts = dict(session.execute(select(JobEventRow.job_id, func.count()).where(
                JobEventRow.job_id.in_([r.id for r in rows])).group_by(JobEventRow.job_id)).all())
            return [row.to_entity(counts.get(row.id, 0)) for row in rows]

    def events(self, job_id: int, after: int = 0) -> list[JobEvent]:
        """The job's events in order; ``after`` leaves out those numbered up to it (a follower's last seen)."""
        with self.db.session() as session:
            _row(session, job_id)
            rows = session.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.seq > after)
                                   .order_by(JobEventRow.seq))
            return [r.to_entity() for r in rows]

    def cancel(self, job_id: int) -> JobInfo:
        """Stop a job: a queued one never starts, a running one stops at its next checkpoint."""

        def work(session: Session) -> JobInfo:
            row = _row(session, job_id)
            if row.status in FINISHED:
                raise ConflictError(f"job {job_id} has already {row.status.replace('cancelled', 'been cancelled')}")
            row.status, row.finished_at = JobStatus.CANCELLED.value, utcnow()
            return row.to_entity()

        return self.db.write(work)

    def requeue(self, job_id: int, force: bool = False) -> JobInfo:
        """Put a failed, cancelled or abandoned job back in the queue; it continues from its checkpoint."""

        def work(session: Session) -> JobInfo:
            row = _row(session, job_id)
            if row.status == JobStatus.SUCCEEDED.value:
                raise ConflictError(f"job {job_id} has already succeeded")
            if row.status == RUNNING and not force and not self._lapsed(row):
                age = (utcnow() - as_utc(row.heartbeat_at)).total_seconds()
                raise ConflictError(f"job {job_id} is running on {row.worker} (heartbeat {age:.0f}s ago); "
                                    "if that worker is dead, take the job over ({force})", options=["force"])
            row.status, row.error, row.finished_at, row.worker = QUEUED, None, None, None
            return row.to_entity()

        return self.db.write(work)

    # -- workers ----------------------------------------------------------------

    def claim(self, worker: str, kinds: Sequence[str] | None = None, job_id: int | None = None) -> tuple[Claim, JobInfo] | None:
        """Take the oldest queued (or abandoned) job of ``kinds``, or job ``job_id``; None when there is none."""

        def work(session: Session):
            claimable = or_(JobRow.status == QUEUED, (JobRow.status == RUNNING) & (JobRow.heartbeat_at < self._cutoff()))
            query = select(JobRow).where(claimable).order_by(JobRow.id).limit(1).with_for_update(skip_locked=True)
            if kinds:
                query = query.where(JobRow.kind.in_(list(kinds)))
            if job_id is not None:
                query = query.where(JobRow.id == job_id)
            row = session.scalars(query).first()
            if row is None:
                return None
            now = utcnow()
            row.status, row.worker, row.attempts = RUNNING, worker, row.attempts + 1
            row.started_at, row.heartbeat_at = row.started_at or now, now
            return Claim(row.id, worker, row.attempts), row.to_entity()

        return self.db.write(work)

    def heartbeat(self, claim: Claim) -> None:
        self.db.write(lambda session: self._touch(session, claim))

    def checkpoint(self, claim: Claim, state: dict[str, Any], event: dict[str, Any] | None = None) -> None:
        """Save the job's state and, with it, the next event: both or neither."""

        def work(session: Session) -> None:
            self._touch(session, claim, state=state)
            if event is not None:
                last = session.scalar(select(func.max(JobEventRow.seq)).where(JobEventRow.job_id == claim.job_id))
                session.add(JobEventRow(job_id=claim.job_id, seq=(last or 0) + 1, data=event))

        self.db.write(work)

    def finish(self, claim: Claim, result: dict[str, Any]) -> None:
        self.db.write(lambda s: self._touch(s, claim, status=JobStatus.SUCCEEDED.value, result=result, finished_at=utcnow()))

    def fail(self, claim: Claim, error: str) -> None:
        self.db.write(lambda s: self._touch(s, claim, status=JobStatus.FAILED.value, error=error[:4000], finished_at=utcnow()))

    def _touch(self, session: Session, claim: Claim, **values: Any) -> None:
        held = update(JobRow).where(JobRow.id == claim.job_id, JobRow.worker == claim.worker,
                                    JobRow.attempts == claim.attempt, JobRow.status == RUNNING)
        if session.execute(held.values(heartbeat_at=utcnow(), **values)).rowcount != 1:
            raise ClaimLost(f"job {claim.job_id} is no longer held by {claim.worker} "
                            f"({_row(session, claim.job_id).status})")

    def held(self, job: JobInfo) -> bool:
        """Whether a worker holds ``job`` now: running, with a heartbeat within the timeout (a job whose worker
        died stays ``running`` until it is taken over; this tells the two apart)."""
        return job.status == JobStatus.RUNNING and not self._lapsed(job)

    def _cutoff(self) -> datetime:
        return utcnow() - timedelta(seconds=self.timeout)

    def _lapsed(self, row: JobRow | JobInfo) -> bool:
        return row.heartbeat_at is None or as_utc(row.heartbeat_at) < self._cutoff()


def _row(session: Session, job_id: int) -> JobRow:
    if not 1 <= job_id <= INT_MAX:  # no row has such an id, and the driver could not even send it
        raise NotFoundError(f"no job {job_id}")
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    return row


def _event_count(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).select_from(JobEventRow).where(JobEventRow.job_id == job_id)) or 0

