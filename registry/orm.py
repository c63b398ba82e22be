"""SQLAlchemy ORM rows. These are storage, not API: the store turns them into
the domain objects of :mod:`t2reg.registry.entities` before they leave it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from t2reg.architectures import get_architecture
from t2reg.registry.entities import (
    EvaluationInfo,
    ExpertVersion,
    JobEvent,
    JobInfo,
    Lineage,
    LineageLink,
    ModelInfo,
    ProtocolInfo,
    RankedVersion,
    as_utc,
)
from t2reg.registry.validation import readable_json
from t2reg.expert_file import Metric
from t2reg.enums import JobStatus, Relation, Source, VersionStatus

# Named constraints keep alembic's SQLite batch mode able to find them again.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class BaseModelRow(Base):
    __tablename__ = "base_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    revision: Mapped[str] = mapped_column(String(100), default="")
    architecture: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    location: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # parameter name -> [out, in] of every adaptable matrix: the shape summary
    shapes: Mapped[dict[str, list[int]]] = mapped_column(JSON)
    spectra_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self, aliases: tuple[str, ...]) -> ModelInfo:
        arch = get_architecture(self.architecture)
        return ModelInfo(
            name=self.name,
            aliases=aliases,
            architecture=self.architecture,
            revision=self.revision,
            source=self.source,
            location=self.location,
            num_layers=len({arch.locate(name)[0] for name in self.shapes}),
            num_matrices=len(self.shapes),
            created_at=self.created_at,
            spectra_fingerprint=self.spectra_fingerprint,
        )


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"

    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExpertRow(Base):
    __tablename__ = "experts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    task: Mapped[str | None] = mapped_column(String(100), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VersionRow(Base):
    __tablename__ = "expert_versions"
    __table_args__ = (UniqueConstraint("expert_id", "version", name="uq_expert_versions_expert_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id"))
    version: Mapped[int] = mapped_column(Integer)
    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    n_params: Mapped[int] = mapped_column(Integer)
    parametrization: Mapped[str] = mapped_column(String(20))
    renormalize: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.LIVE.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when soft-deleted (gc's grace)

    def to_entity(self, expert: ExpertRow, model_name: str, **extra: Any) -> ExpertVersion:
        """The version as handed out; ``extra`` adds tags, aliases, evaluations and lineage."""
        return ExpertVersion(
            name=expert.name,
            version=self.version,
            model=model_name,
            task=expert.task,
            source=Source(self.source),
            status=VersionStatus(self.status),
            sha256=self.blob_sha256,
            size=self.size,
            n_params=self.n_params,
            parametrization=self.parametrization,
            renormalize=self.renormalize,
            created_at=self.created_at,
            description=expert.description,
            metadata=self.meta,
            **extra,
        )


class ProtocolRow(Base):
    """How scores were measured (see :mod:`t2reg.protocols`); ``uses`` counts the runs recorded under it,
    so a task's most used protocol is one indexed lookup."""

    __tablename__ = "protocols"
    __table_args__ = (Index("ix_protocols_task_uses", "task", "uses"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> ProtocolInfo:
        return ProtocolInfo(self.id, self.task, readable_json(self.spec, f"the spec of protocol {self.id}"), self.uses)


class ScoreColumns:
    """What every score row holds: ``task:metric = value`` on ``split`` over ``n`` examples, measured under
    ``protocol_id``, with the per-question results (a blob) when the run kept them."""

    task: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    split: Mapped[str | None] = mapped_column(String(50))
    n: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    protocol_id: Mapped[str] = mapped_column(String(128), ForeignKey("protocols.id"))
    results_sha256: Mapped[str | None] = mapped_column(String(64))

    def to_entity(self) -> EvaluationInfo:
        return EvaluationInfo(self.task, self.metric, self.value, self.split, self.n, self.source, self.created_at,
                              self.protocol_id, self.results_sha256)

    @staticmethod
    def columns_of(metric: Metric, source: str, protocol_id: str, results_sha256: str | None) -> dict[str, Any]:
        """The score columns of a new row recording ``metric``."""
        return {"task": metric.task, "metric": metric.metric, "value": metric.value, "split": metric.split,
                "n": metric.n, "source": source, "protocol_id": protocol_id, "results_sha256": results_sha256}


class EvaluationRow(ScoreColumns, Base):
    """One score. ``is_latest`` marks the newest row per (version, task, metric, protocol),
    ``is_latest_in_split`` the newest per (version, task, metric, protocol, split); both are
    maintained in the inserting transaction so ``best`` is one index range scan."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_rank", "task", "metric", "protocol_id", "is_latest", "value", "id"),
        Index("ix_evaluations_rank_split", "task", "metric", "protocol_id", "split", "is_latest_in_split", "value",
              "id"),
        Index("ix_evaluations_version", "version_id", "task", "metric"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("expert_versions.id", ondelete="CASCADE"))
    is_latest: Mapped[bool] = mapped_column(Boolean, default=True)
    is_latest_in_split: Mapped[bool] = mapped_column(Boolean, default=True)

    def to_ranked(self, rank: int, name: str, version: int, source: str, model: str) -> RankedVersion:
        """This score as one row of ``best``, for version ``name:version`` of ``model``."""
        return RankedVersion(rank, f"{name}:{version}", name, version, model, Source(source), self.task, self.metric,
                             self.value, self.split, self.n, self.created_at, self.protocol_id)


class LineageRow(Base):
    __tablename__ = "lineage"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("expert_versions.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("expert_versions.id"), index=True)
    relation: Mapped[str] = mapped_column(String(40))
    weight: Mapped[float | None] = mapped_column(Float)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_entity(self, parent: str | None) -> Lineage:
        """``parent`` is the parent's NAME:VERSION (None for an edge to no version, e.g. trained_from)."""
        return Lineage(parent, Relation(self.relation), self.weight, readable_json(self.params, "lineage params"))

    def to_link(self, parent: str, child: str) -> LineageLink:
        """The edge with both ends named (NAME:VERSION), as a lineage graph holds it."""
        return LineageLink(parent, child, Relation(self.relation), self.weight,
                           readable_json(self.params, "lineage params"))


class VersionTagRow(Base):
    __tablename__ = "version_tags"

    version_id: Mapped[int] = mapped_column(ForeignKey("expert_versions.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class VersionAliasRow(Base):
    __tablename__ = "version_aliases"

    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("expert_versions.id", ondelete="CASCADE"), index=True)


class ModelEvaluationRow(ScoreColumns, Base):
    """A score of a base model itself (no expert applied): the baseline experts are compared with."""

    __tablename__ = "model_evaluations"
    __table_args__ = (Index("ix_model_evaluations_lookup", "model_id", "task", "metric", "split", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))


class JobRow(Base):
    """A unit of long work (adapt, train, eval, transfer). ``state`` is the job's
    last checkpoint; a claim is (``worker``, ``attempts``) and lapses when
    ``heartbeat_at`` grows older than the queue's timeout."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "status", "kind", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def to_entity(self, events: int = 0) -> JobInfo:
        times = {k: as_utc(getattr(self, k)) if getattr(self, k) else None
                 for k in ("created_at", "started_at", "heartbeat_at", "finished_at")}
        return JobInfo(id=self.id, kind=self.kind, status=JobStatus(self.status), spec=self.spec, state=self.state,
                       result=self.result, error=self.error, worker=self.worker, attempts=self.attempts,
                       events=events, **times)


class JobEventRow(Base):
    """One step of a job (a CEM generation, a training iteration), written with its checkpoint."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> JobEvent:
        return JobEvent(self.seq, self.data, as_utc(self.created_at))


class BlobRow(Base):
    """A blob kept in the database (the ``database`` blob store): named by the sha256 of ``data``.

    ``touched_at`` is refreshed whenever the same bytes are stored again, so gc's grace period
    protects a blob a publish in flight is about to point to, as a file's mtime does."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    touched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RegistrySettingRow(Base):
    """A choice made once for the whole registry (``blob_store``), so every machine reaching the database
    makes the same one without being told."""

    __tablename__ = "registry_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
