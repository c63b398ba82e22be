"""Domain objects the registry hands out. Plain frozen dataclasses, detached from
any database session, each with ``to_dict`` for ``--json`` output."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from t2reg.enums import JobStatus, Relation, Source, VersionStatus, Word


def plain(value: Any, extra: Callable[[Any], dict[str, Any]] | None = None) -> Any:
    """``value`` as JSON-ready data: dataclasses become dicts (plus ``extra(obj)``'s keys, for derived
    fields), vocabulary words their text, datetimes UTC ISO strings."""
    if isinstance(value, Word):
        return value.value
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: plain(getattr(value, f.name), extra) for f in dataclasses.fields(value)}
        return fields | (extra(value) if extra else {})
    if isinstance(value, (list, tuple)):
        return [plain(v, extra) for v in value]
    if isinstance(value, dict):
        return {k: plain(v, extra) for k, v in value.items()}
    return value


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything t2reg stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True)
class ModelInfo(_Serialisable):
    name: str
    aliases: tuple[str, ...]
    architecture: str
    revision: str
    source: str
    location: str | None
    num_layers: int
    num_matrices: int
    created_at: datetime
    spectra_fingerprint: str | None = None

    @property
    def handle(self) -> str:
        """The short name used in default expert names: first alias, else the name's last part."""
        return self.aliases[0] if self.aliases else self.name.rsplit("/", 1)[-1].lower()


@dataclass(frozen=True)
class EvaluationInfo(_Serialisable):
    task: str
    metric: str
    value: float
    split: str | None
    n: int | None
    source: str
    created_at: datetime
    protocol: str = ""  # the protocol's id
    results_sha256: str | None = None  # the per-question results blob, when the run kept them


@dataclass(frozen=True)
class ProtocolInfo(_Serialisable):
    """A protocol as stored: its id, task, spec (see :class:`t2reg.protocols.Protocol`) and use count."""

    id: str
    task: str
    spec: dict[str, Any]
    uses: int


@dataclass(frozen=True)
class Lineage(_Serialisable):
    """One edge from a version to what it came from: given to ``publish``, read back by ``get``."""

    parent: str | None  # a reference to the parent version (NAME:VERSION when read back); None: no version
    relation: Relation
    weight: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Derivation(_Serialisable):
    """One edge seen from the parent's side: a version made from it (``child`` is NAME:VERSION)."""

    child: str
    source: Source
    relation: Relation
    weight: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RelatedVersion(_Serialisable):
    """A version as a lineage graph shows it."""

    ref: str  # NAME:VERSION
    source: Source
    model: str
    job: int | None  # the job that published it (its ``job`` tag), when a job did
    depth: int  # generations from the graph's root: ancestors below 0, descendants above


@dataclass(frozen=True)
class LineageLink(_Serialisable):
    """One lineage edge with both ends named (NAME:VERSION)."""

    parent: str
    child: str
    relation: Relation
    weight: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineageGraph(_Serialisable):
    """A version's family: the root, what it came from and what was made from it, a few generations each way."""

    root: str
    versions: tuple[RelatedVersion, ...]  # the root first, then ancestors and descendants, nearest first
    links: tuple[LineageLink, ...]  # every edge between two of ``versions``


@dataclass(frozen=True)
class ExpertVersion(_Serialisable):
    name: str
    version: int
    model: str
    task: str | None
    source: Source
    status: VersionStatus
    sha256: str
    size: int
    n_params: int
    parametrization: str
    renormalize: str
    created_at: datetime
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    evaluations: tuple[EvaluationInfo, ...] = ()
    lineage: tuple[Lineage, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, **plain(self)}


@dataclass(frozen=True)
class RankedVersion(_Serialisable):
    """One row of ``best``: a version and the score that ranks it."""

    rank: int
    ref: str
    name: str
    version: int
    model: str
    source: Source
    task: str
    metric: str
    value: float
    split: str | None
    n: int | None
    evaluated_at: datetime
    protocol: str = ""
    interval95: tuple[float, float] | None = None  # for a proportion with its n
    overlaps_leader: bool = False  # the interval overlaps the first row's: not told apart from it


@dataclass(frozen=True)
class ListedPage(_Serialisable):
    """One page of the expert listing, the number of versions on every page together, and each listed
    version's score in ``best``'s sense: its newest score of the metric under its task's default protocol."""

    versions: tuple[ExpertVersion, ...]
    total: int
    scores: dict[str, EvaluationInfo]  # by NAME:VERSION; a version with no such score is not a key


@dataclass(frozen=True)
class VerifyReport(_Serialisable):
    checked: int
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]
    unreferenced: tuple[str, ...]
    strays: tuple[str, ...] = ()  # paths under sha256/ that are not blobs (reported, never touched)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


@dataclass(frozen=True)
class GcReport(_Serialisable):
    removed: tuple[str, ...]
    temp_files_removed: int
    bytes_freed: int
    kept_young: int
    dry_run: bool
    purged: tuple[str, ...] = ()  # NAME:VERSION of versions purged by this run (or that would be)
    shared_with: tuple[str, ...] = ()  # other registries using the store, whose references were honoured
    strays: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobEvent(_Serialisable):
    seq: int
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class JobInfo(_Serialisable):
    id: int
    kind: str
    status: JobStatus
    spec: dict[str, Any]
    state: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    worker: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    events: int = 0

    @property
    def finished(self) -> bool:
        return self.status.finished
