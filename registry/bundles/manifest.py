"""``t2reg.json``: the bundle's manifest, as typed objects, written and parsed strictly.

Parsing trusts nothing: every field is checked for its type, names go through
the registry's validators, hashes must be 64 lowercase hex digits, and each
file's path must be exactly the one its kind and hash give (so ``../`` or an
absolute path is refused, not resolved). A manifest of another format version
is refused: this t2reg cannot know what a newer one means.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, TypeVar

from t2reg.errors import InvalidInputError, shown
from t2reg.expert_file import Metric
from t2reg.registry import protocols
from t2reg.registry.entities import EvaluationInfo, as_utc, plain
from t2reg.registry.validation import (
    NAME_MAX,
    SOURCE_MAX,
    TASK_MAX,
    check_json,
    check_metric,
    check_tag,
    check_text,
    validate_model_name,
    validate_name,
    validate_revision,
    validate_task,
)
from t2reg.enums import Relation, Source, Word

FORMAT = "t2reg.bundle"
FORMAT_VERSION = 1
MANIFEST = "t2reg.json"
CARD = "README.md"
MAX_MANIFEST_BYTES = 64 << 20
_SHA = re.compile(r"[0-9a-f]{64}")
T = TypeVar("T")
_KINDS = {str: "text", int: "a whole number", float: "a number", list: "a list", dict: "an object"}
_FLOAT_MAX = int(sys.float_info.max)
# Scores are dated from the epoch to the year 9998: each must convert to UTC and back on every database.
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc)


class FileKind(Word):
    EXPERT = "expert"
    RESULTS = "results"

    def path_for(self, sha256: str) -> str:
        """The one path a file of this kind and hash may have inside a bundle."""
        return f"experts/{sha256}.safetensors" if self is FileKind.EXPERT else f"results/{sha256}.jsonl.gz"


@dataclass(frozen=True)
class BundleFile:
    kind: FileKind
    sha256: str
    size: int

    @property
    def path(self) -> str:
        return self.kind.path_for(self.sha256)


@dataclass(frozen=True)
class BundleModel:
    """A base model a bundled version is for: the importing registry must know it (by name) already."""

    name: str
    revision: str
    architecture: str


@dataclass(frozen=True)
class BundleProtocol:
    id: str
    task: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class BundleLineage:
    """An edge to a parent: ``parent`` is the key of a bundled version, or None; ``parent_sha256`` lets an
    importer find a parent that was not bundled among its own versions."""

    relation: Relation
    parent: str | None
    parent_name: str | None
    parent_sha256: str | None
    weight: float | None
    params: dict[str, Any]


@dataclass(frozen=True)
class BundleVersion:
    """One version. ``key`` is its NAME:VERSION in the registry it was exported from (numbers may differ
    in the registry it is imported into)."""

    key: str
    name: str
    model: str
    task: str | None
    description: str
    source: Source
    sha256: str
    size: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    evaluations: tuple[EvaluationInfo, ...] = ()  # as recorded in the registry it was exported from
    lineage: tuple[BundleLineage, ...] = ()


@dataclass(frozen=True)
class Manifest:
    root: str  # the key of the version the bundle is about; the others are its ancestors
    models: tuple[BundleModel, ...]
    protocols: tuple[BundleProtocol, ...]
    versions: tuple[BundleVersion, ...]  # parents before children
    files: tuple[BundleFile, ...]
    format_version: int = FORMAT_VERSION

    @property
    def root_version(self) -> BundleVersion:
        return next(v for v in self.versions if v.key == self.root)

    def to_json(self) -> str:
        return json.dumps(plain(self, _derived_fields), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _derived_fields(value: Any) -> dict[str, Any]:
    """What the file holds beyond the dataclass fields: the format version, each file's hash-named path."""
    return {"format": FORMAT} if isinstance(value, Manifest) else {"path": value.path} if isinstance(
        value, BundleFile) else {}


# -- parsing --------------------------------------------------------------------


def parse_manifest(text: str) -> Manifest:
    """The manifest in ``text``, or an :class:`InvalidInputError` naming the first thing wrong with it."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{MANIFEST} is not JSON ({exc})") from None
    top = _Object(data, MANIFEST)
    if top.get("format", str) != FORMAT:
        raise InvalidInputError(f"{MANIFEST} is not a t2reg bundle manifest (format is not {FORMAT!r})")
    version = top.get("format_version", int)
    if version != FORMAT_VERSION:
        raise InvalidInputError(f"{MANIFEST} has bundle format version {version}; this t2reg reads version "
                                f"{FORMAT_VERSION} only (upgrade t2reg for newer bundles)")
    manifest = Manifest(
        root=top.get("root", str),
        models=tuple(_model(o) for o in top.objects("models")),
        protocols=tuple(_protocol(o) for o in top.objects("protocols")),
        versions=tuple(_version(o) for o in top.objects("versions")),
        files=tuple(_file(o) for o in top.objects("files")),
    )
    _check_consistent(manifest)
    return manifest


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


class _Object:
    """A JSON object being read, with its place in the manifest for error messages."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise InvalidInputError(f"{where} must be an object")
        self.data, self.where = data, where

    def get(self, key: str, kind: type[T], optional: bool = False) -> T:
        value = self.data.get(key)
        if value is None and optional:
            return None  # type: ignore[return-value]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = (float(value), True) if abs(value) <= _FLOAT_MAX else (value, False)
        if not ok:
            raise InvalidInputError(f"{self.where}.{key} must be {_KINDS.get(kind, kind.__name__)}")
        return value

    def objects(self, key: str) -> list["_Object"]:
        return [_Object(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(self.get(key, list))]

    def strings(self, key: str) -> list[str]:
        items = self.get(key, list)
        if not all(isinstance(s, str) for s in items):
            raise InvalidInputError(f"{self.where}.{key} must be a list of text")
        return items


def _sha(value: str | None, where: str) -> str | None:
    if value is not None and not _SHA.fullmatch(value):
        raise InvalidInputError(f"{where} is not a sha256 (64 lowercase hex digits)")
    return value


def _name(o: _Object, key: str, what: str, max_length: int = NAME_MAX) -> str:
    """``o[key]``, a name by the registry's rules (what a name may be is the same in every registry)."""
    return _valid_name(o.get(key, str), f"{o.where}.{key}", what, max_length)


def _valid_name(value: str, where: str, what: str, max_length: int = NAME_MAX) -> str:
    return _checked(where, validate_name, value, what, max_length)


def _checked(where: str, check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``check(*args)``, its refusal prefixed with the place in the manifest."""
    try:
        return check(*args, **kwargs)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def _model(o: _Object) -> BundleModel:
    return BundleModel(_checked(f"{o.where}.name", validate_model_name, o.get("name", str)),
                       _checked(f"{o.where}.revision", validate_revision, o.get("revision", str)),
                       _name(o, "architecture", "architecture"))


def _protocol(o: _Object) -> BundleProtocol:
    """A protocol exactly as this registry would write it (see :func:`protocols.check_spec`): its spec is
    stored, and read back by every ``best`` and ``protocols``."""
    protocol_id, task = check_text(o.get("id", str), f"{o.where}.id", 128), _name(o, "task", "task", TASK_MAX)
    return BundleProtocol(protocol_id, task, _checked(o.where, protocols.check_spec, protocol_id, task,
                                                      o.get("spec", dict)))


def _evaluation(o: _Object) -> EvaluationInfo:
    metric = _checked(o.where, check_metric, Metric(o.get("task", str), o.get("metric", str), o.get("value", float),
                                                    o.get("split", str, optional=True), o.get("n", int, optional=True)))
    return EvaluationInfo(
        task=metric.task, metric=metric.metric, value=metric.value, split=metric.split, n=metric.n,
        source=_name(o, "source", "score source", SOURCE_MAX),
        protocol=check_text(o.get("protocol", str), f"{o.where}.protocol", 128),
        results_sha256=_sha(o.get("results_sha256", str, optional=True), f"{o.where}.results_sha256"),
        created_at=_time(o.get("created_at", str), f"{o.where}.created_at"),
    )


def _time(text: str, where: str) -> datetime:
    """An ISO 8601 time between 1970 and 9998, in UTC (a naive one is taken as UTC)."""
    try:
        when = as_utc(datetime.fromisoformat(text)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidInputError(f"{where} is not an ISO 8601 time") from None
    if not _EARLIEST <= when < _LATEST:
        raise InvalidInputError(f"{where} is not between 1970 and 9998")
    return when


def _lineage(o: _Object) -> BundleLineage:
    weight = o.get("weight", float, optional=True)
    if weight is not None and not math.isfinite(weight):
        raise InvalidInputError(f"{o.where}.weight must be a finite number")
    parent_name = o.get("parent_name", str, optional=True)
    return BundleLineage(
        relation=Relation.parse(o.get("relation", str), "lineage relation"),
        parent=o.get("parent", str, optional=True),  # a key: it must name a version listed before
        parent_name=None if parent_name is None else _valid_name(parent_name, f"{o.where}.parent_name", "expert name"),
        parent_sha256=_sha(o.get("parent_sha256", str, optional=True), f"{o.where}.parent_sha256"),
        weight=weight,
        params=check_json(o.get("params", dict), f"{o.where}.params"),
    )


def _tags(o: _Object) -> dict[str, str]:
    tags = o.get("tags", dict)
    for key, value in tags.items():
        _valid_name(key, f"{o.where}.tags", "tag key")  # first: the key is named in the next message
        if not isinstance(value, str):
            raise InvalidInputError(f"{o.where}.tags.{key} must be text")
    return dict(check_tag(k, v) for k, v in tags.items())


def _version(o: _Object) -> BundleVersion:
    return BundleVersion(
        key=check_text(o.get("key", str), f"{o.where}.key", 200),
        name=_name(o, "name", "expert name"),
        model=_checked(f"{o.where}.model", validate_model_name, o.get("model", str)),
        task=validate_task(o.get("task", str, optional=True)),
        description=check_text(o.get("description", str), f"{o.where}.description", 10_000, newlines=True),
        source=Source.parse(o.get("source", str), "source"),
        sha256=_sha(o.get("sha256", str), f"{o.where}.sha256"),
        size=o.get("size", int),
        tags=_tags(o),
        aliases=tuple(_valid_name(a, f"{o.where}.aliases", "alias") for a in o.strings("aliases")),
        evaluations=tuple(_evaluation(e) for e in o.objects("evaluations")),
        lineage=tuple(_lineage(e) for e in o.objects("lineage")),
    )


def _file(o: _Object) -> BundleFile:
    kind = FileKind.parse(o.get("kind", str), "bundle file kind")
    sha = _sha(o.get("sha256", str), f"{o.where}.sha256")
    path = o.get("path", str)
    if path != kind.path_for(sha):
        raise InvalidInputError(f"{o.where}.path {shown(path)} is not {kind.path_for(sha)!r}; a bundle's paths are "
                                "derived from hashes, never taken from it")
    size = o.get("size", int)
    if size < 0:
        raise InvalidInputError(f"{o.where}.size must not be negative")
    return BundleFile(kind, sha, size)


def _check_consistent(manifest: Manifest) -> None:
    """Every key, model, protocol and file a version mentions is there, every parent comes first, and every
    file listed is one a version or a score uses (an extra file would be stored as a blob nothing points to)."""
    seen: set[str] = set()
    models = {m.name for m in manifest.models}
    protocol_tasks = _unique({p.id: p.task for p in manifest.protocols}, manifest.protocols, "protocol")
    files: Mapping[tuple[FileKind, str], BundleFile] = _unique(
        {(f.kind, f.sha256): f for f in manifest.files}, manifest.files, "file")
    used: set[tuple[FileKind, str]] = set()
    for version in manifest.versions:
        if version.key in seen:
            raise InvalidInputError(f"{MANIFEST}: version {shown(version.key)} is listed twice")
        if version.model not in models:
            raise InvalidInputError(f"{MANIFEST}: {version.key} names model {shown(version.model)}, which is not listed")
        expert = files.get((FileKind.EXPERT, version.sha256))
        if expert is None:
            raise InvalidInputError(f"{MANIFEST}: the expert file of {version.key} is not listed")
        if expert.size != version.size:
            raise InvalidInputError(f"{MANIFEST}: {version.key}'s size is not its file's")
        used.add((FileKind.EXPERT, version.sha256))
        for evaluation in version.evaluations:
            if evaluation.protocol not in protocol_tasks:
                raise InvalidInputError(f"{MANIFEST}: protocol {shown(evaluation.protocol)} is not listed")
            if protocol_tasks[evaluation.protocol] != evaluation.task:
                raise InvalidInputError(f"{MANIFEST}: a {evaluation.task} score of {version.key} names a "
                                        f"{protocol_tasks[evaluation.protocol]} protocol")
            if evaluation.results_sha256:
                if (FileKind.RESULTS, evaluation.results_sha256) not in files:
                    raise InvalidInputError(f"{MANIFEST}: results {evaluation.results_sha256} are not listed")
                used.add((FileKind.RESULTS, evaluation.results_sha256))
        for edge in version.lineage:
            if edge.parent is not None and edge.parent not in seen:
                raise InvalidInputError(f"{MANIFEST}: {version.key}'s parent {shown(edge.parent)} is not listed before it")
        seen.add(version.key)
    if manifest.root not in seen:
        raise InvalidInputError(f"{MANIFEST}: the root version {shown(manifest.root)} is not listed")
    extra = sorted(set(files) - used)
    if extra:
        raise InvalidInputError(f"{MANIFEST}: file {extra[0][0].path_for(extra[0][1])} is listed but no version or "
                                "score uses it")


def _unique(by_key: dict, items: tuple, what: str) -> dict:
    if len(by_key) != len(items):
        raise InvalidInputError(f"{MANIFEST}: a {what} is listed twice")
    return by_key
