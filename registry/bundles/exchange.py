"""Writing a version (and, asked, its ancestors) to a bundle folder, and reading one into a registry.

Import checks everything before it writes anything: the manifest, every file's
size and sha256, every expert file against its base model, every result file's
format, and that this registry knows each base model. Only then does it write,
in one unit with the blobs (:meth:`BlobStore.write
<t2reg.registry.blob_store.BlobStore.write>`), each new version landed as
``publish`` lands one (:func:`t2reg.registry.versions.land_version`). It
is idempotent: a version whose expert already holds a version with the same
bytes is that version; scores, tags and aliases already there are not added
twice.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from t2reg.errors import ConflictError, InvalidInputError, NotFoundError, Remedy, shown
from t2reg.expert_file import MAX_FILE_BYTES, Expert, Metric, check_against_model, loads_expert
from t2reg.protocols import without_bos_id, without_bos_spec
from t2reg.files import check_folder_destination, land_bytes, land_text, landing_dir
from t2reg.question_results import loads_results
from t2reg.registry import base_models, evaluations, labels, protocols, versions
from t2reg.registry.bundles.card import render_card
from t2reg.registry.bundles.manifest import (
    CARD,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    BundleFile,
    BundleLineage,
    BundleModel,
    BundleProtocol,
    BundleVersion,
    FileKind,
    Manifest,
    parse_manifest,
)
from t2reg.registry.entities import EvaluationInfo, ExpertVersion, Lineage
from t2reg.registry.orm import BaseModelRow, EvaluationRow, ExpertRow, VersionAliasRow, VersionRow, VersionTagRow
from t2reg.enums import VersionStatus

if TYPE_CHECKING:
    from t2reg.registry.api import Registry


# -- export ---------------------------------------------------------------------


def export_bundle(registry: Registry, ref: str, out: str | os.PathLike[str], *, with_lineage: bool = False) -> Manifest:
    """Write ``ref`` (and, ``with_lineage``, every ancestor whose file is kept) as a bundle folder ``out``.

    ``out`` must be absent or empty; it appears whole or not at all.
    """
    check_folder_destination(out)  # before reading every blob
    chosen = _versions_to_export(registry, ref, with_lineage)
    root = chosen[-1]
    blobs: dict[tuple[FileKind, str], bytes] = {}
    bundled = [_bundle_version(registry, v, {c.ref for c in chosen}, blobs) for v in chosen]
    models = {v.model: registry.get_model(v.model) for v in chosen}
    protocol_ids = sorted({e.protocol for v in bundled for e in v.evaluations})
    manifest = Manifest(
        root=root.ref,
        models=tuple(BundleModel(m.name, m.revision, m.architecture) for m in models.values()),
        protocols=tuple(_bundle_protocol(registry, p) for p in protocol_ids),
        versions=tuple(bundled),
        files=tuple(BundleFile(kind, sha, len(data)) for (kind, sha), data in sorted(blobs.items())),
    )
    with landing_dir(Path(out)) as staging:
        for file in manifest.files:
            (staging / file.path).parent.mkdir(exist_ok=True)
            land_bytes(staging / file.path, blobs[(file.kind, file.sha256)])
        land_text(staging / MANIFEST, manifest.to_json())
        root_model = next(m for m in manifest.models if m.name == root.model)
        land_text(staging / CARD, render_card(manifest.root_version, root_model))
    return manifest


def _versions_to_export(registry: Registry, ref: str, with_lineage: bool) -> list[ExpertVersion]:
    """The version and (asked) its ancestors, parents before children."""
    root = registry.get(ref)
    if root.status == VersionStatus.PURGED:
        raise NotFoundError(f"{root.ref} was purged by gc: its file is gone")
    # Depth first, parents before children, with a stack: a lineage thousands of versions long is no
    # RecursionError.
    ordered: list[ExpertVersion] = []
    seen: set[str] = {root.ref}

    def parents(version: ExpertVersion) -> Iterator[ExpertVersion]:
        for edge in version.lineage if with_lineage else ():
            if edge.parent is not None and edge.parent not in seen:
                parent = registry.get(edge.parent)
                if parent.status != VersionStatus.PURGED:  # a purged parent has no file to carry
                    yield parent

    stack = [(root, parents(root))]
    while stack:
        version, pending = stack[-1]
        parent = next(pending, None)
        if parent is None:
            stack.pop()
            ordered.append(version)
        elif parent.ref not in seen:
            seen.add(parent.ref)
            stack.append((parent, parents(parent)))
    return ordered


def _bundle_version(registry: Registry, version: ExpertVersion, bundled: set[str],
                    blobs: dict[tuple[FileKind, str], bytes]) -> BundleVersion:
    blobs[(FileKind.EXPERT, version.sha256)] = registry.blobs.read(version.sha256)  # checked on read
    for evaluation in version.evaluations:
        if evaluation.results_sha256:
            blobs[(FileKind.RESULTS, evaluation.results_sha256)] = registry.blobs.read(evaluation.results_sha256)
    return BundleVersion(
        key=version.ref, name=version.name, model=version.model, task=version.task,
        description=version.description, source=version.source, sha256=version.sha256, size=version.size,
        tags=dict(version.tags), aliases=tuple(version.aliases),
        evaluations=version.evaluations,
        lineage=tuple(_bundle_edge(registry, edge, bundled) for edge in version.lineage),
    )


def _bundle_edge(registry: Registry, edge: Lineage, bundled: set[str]) -> BundleLineage:
    parent = registry.get(edge.parent) if edge.parent is not None else None
    return BundleLineage(
        relation=edge.relation, parent=edge.parent if edge.parent in bundled else None,
        parent_name=parent.name if parent else None, parent_sha256=parent.sha256 if parent else None,
        weight=edge.weight, params=dict(edge.params))


def _bundle_protocol(registry: Registry, protocol_id: str) -> BundleProtocol:
    info = registry.protocol(protocol_id)
    return BundleProtocol(info.id, info.task, dict(info.spec))


# -- import ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A bundle read and checked: its manifest and every file's bytes (each hashed against its name)."""

    manifest: Manifest
    blobs: dict[tuple[FileKind, str], bytes]
    experts: dict[str, Expert]  # sha256 -> the parsed expert file (format v1, checked)


@dataclass(frozen=True)
class BundleImport:
    """What an import did: the root's reference here, each bundled version's reference here, and
    what it left alone (lineage to parents neither bundled nor found here, aliases taken here)."""

    root: str
    refs: dict[str, str]  # key in the bundle -> NAME:VERSION here
    created: tuple[str, ...]  # references of versions this import added
    evaluations_added: int
    dropped_lineage: tuple[str, ...] = ()
    skipped_aliases: tuple[str, ...] = field(default_factory=tuple)


def read_bundle(folder: str | os.PathLike[str], links_within: Path | None = None) -> Bundle:
    """Read and check a bundle folder without writing anything (see :func:`import_bundle`).

    Symlinks are refused, except, given ``links_within``, those resolving inside it (the Hugging Face
    cache links each snapshot's files to its own blobs folder).
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a bundle folder")
    try:
        text = _read_inside(root, MANIFEST, MAX_MANIFEST_BYTES, links_within).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{MANIFEST} is not UTF-8 text") from None
    manifest = parse_manifest(text)
    blobs: dict[tuple[FileKind, str], bytes] = {}
    for file in manifest.files:
        if file.size > MAX_FILE_BYTES:
            raise InvalidInputError(f"bundle file {file.path} is larger than {MAX_FILE_BYTES} bytes")
        data = _read_inside(root, file.path, file.size, links_within)
        if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
            raise InvalidInputError(f"bundle file {file.path} does not match its sha256: the bundle was changed "
                                    "or damaged; nothing was imported")
        if file.kind is FileKind.RESULTS:
            loads_results(data, f"bundle file {file.path}")
        blobs[(file.kind, file.sha256)] = data
    experts: dict[str, Expert] = {}
    for version in manifest.versions:
        data = blobs[(FileKind.EXPERT, version.sha256)]
        if version.size != len(data):
            raise InvalidInputError(f"{MANIFEST}: {version.key}'s size does not match its file")
        experts[version.sha256] = loads_expert(data, f"bundle file experts/{version.sha256}.safetensors")
    return Bundle(manifest, blobs, experts)


def _read_inside(root: Path, relative: str, limit: int, links_within: Path | None = None) -> bytes:
    """A regular file at ``relative`` under ``root``, of at most ``limit`` bytes (refused unread when larger):
    no component may be a symlink (but one that stays inside ``links_within``), nothing may lie outside."""
    path = root
    for part in relative.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInputError(f"bundle path {shown(relative)} is not a plain relative path")
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            raise InvalidInputError(f"the bundle has no {relative}; nothing was imported") from None
        if stat.S_ISLNK(mode) and not _stays_within(path, links_within):
            raise InvalidInputError(f"bundle path {relative} goes through a symlink; refusing to follow it")
    if not stat.S_ISREG(path.stat().st_mode):
        raise InvalidInputError(f"bundle path {relative} is not a regular file")
    if path.stat().st_size > limit:
        raise InvalidInputError(f"bundle file {relative} is larger than {limit} bytes")
    with path.open("rb") as fh:
        return fh.read(limit + 1)


def _stays_within(link: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    target, base = link.resolve(), folder.resolve()
    return base in target.parents


def import_bundle(registry: Registry, folder: str | os.PathLike[str], *, links_within: Path | None = None
                  ) -> BundleImport:
    """Bring a bundle into ``registry``: checked whole first, then written with its blobs as one unit."""
    registry.db.check_writable("importing writes")
    bundle = read_bundle(folder, links_within)
    with registry.db.session() as session:
        _check_against_registry(session, bundle)
    return registry.blobs.write(registry.db, bundle.blobs.values(), lambda session: _write(session, bundle))


def _check_against_registry(session: Session, bundle: Bundle) -> None:
    """Refuse what this registry cannot take before anything is written."""
    manifest = bundle.manifest
    for model in manifest.models:
        row = base_models.find_model(session, model.name)
        if row is None:
            raise NotFoundError(f"the bundle is for base model {shown(model.name)}, which this registry does not know",
                                remedy=Remedy("register it", ("model", "add"), (model.name,)))
        if (row.revision or "") != model.revision:
            raise ConflictError(f"the bundle is for {model.name} at revision {shown(model.revision)}; this registry has "
                                f"{row.revision!r}")
    for version in manifest.versions:
        row = base_models.find_model(session, version.model)
        expert = bundle.experts[version.sha256]
        claimed = base_models.find_model(session, expert.meta.base_model) if expert.meta.base_model else None
        if claimed is not None and claimed.id != row.id:
            raise InvalidInputError(f"{MANIFEST}: {version.key} is for {row.name}, but its file says "
                                    f"{claimed.name}")
        check_against_model(expert, {k: min(v) for k, v in row.shapes.items()}, row.name, version.key)
        versions.check_owner(session, version.name, row.id)


def _write(session: Session, bundle: Bundle) -> BundleImport:
    manifest = bundle.manifest
    specs = {p.id: p for p in manifest.protocols}
    ids: dict[str, int] = {}
    refs: dict[str, str] = {}
    created: list[str] = []
    dropped: list[str] = []
    skipped: list[str] = []
    added = 0
    for version in manifest.versions:
        row, new = _find_or_land(session, bundle, version, ids, dropped)
        ids[version.key] = row.id
        refs[version.key] = f"{version.name}:{row.version}"
        if new:
            created.append(refs[version.key])
        added += _add_evaluations(session, row, version.evaluations, specs)
        have = set(session.scalars(select(VersionTagRow.key).where(VersionTagRow.version_id == row.id)))
        labels.set_tags(session, row, {k: v for k, v in version.tags.items() if k not in have})  # never overwrite
        skipped += _add_aliases(session, row, version, refs[version.key])
    return BundleImport(refs[manifest.root], refs, tuple(created), added, tuple(dropped), tuple(skipped))


def _find_or_land(session: Session, bundle: Bundle, version: BundleVersion, ids: dict[str, int],
                  dropped: list[str]) -> tuple[VersionRow, bool]:
    """The version of this expert with these bytes (same bytes, same version), or a new one."""
    same = session.scalar(select(VersionRow).join(ExpertRow, ExpertRow.id == VersionRow.expert_id).where(
        ExpertRow.name == version.name, VersionRow.blob_sha256 == version.sha256,
        VersionRow.status != VersionStatus.PURGED.value).order_by(VersionRow.version).limit(1))
    if same is not None:
        return same, False
    model = base_models.find_model(session, version.model)
    return versions.land_version(session, versions.NewVersion(
        name=version.name, model_id=model.id, task=version.task, description=version.description,
        source=version.source, data=bundle.blobs[(FileKind.EXPERT, version.sha256)],
        expert=bundle.experts[version.sha256], tags=tuple(version.tags.items()),
        lineage=tuple(_edges(session, version, ids, dropped)))), True


def _edges(session: Session, version: BundleVersion, ids: dict[str, int], dropped: list[str]):
    for edge in version.lineage:
        parent_id = ids.get(edge.parent) if edge.parent is not None else None
        if parent_id is None and edge.parent_sha256 is not None:
            parent_id = _find_here(session, edge.parent_name, edge.parent_sha256)
            if parent_id is None:
                dropped.append(f"{version.key} {edge.relation.value} {edge.parent_name} ({edge.parent_sha256[:12]})")
                continue
        yield parent_id, Lineage(None, edge.relation, edge.weight, edge.params)


def _find_here(session: Session, name: str | None, sha256: str) -> int | None:
    return session.scalar(select(VersionRow.id).join(ExpertRow, ExpertRow.id == VersionRow.expert_id).where(
        ExpertRow.name == name, VersionRow.blob_sha256 == sha256).order_by(VersionRow.version).limit(1))


def _add_evaluations(session: Session, row: VersionRow, bundled: tuple[EvaluationInfo, ...],
                     specs: dict[str, BundleProtocol]) -> int:
    """The bundle's scores this version does not hold yet, with their protocols and original times."""
    have = {(e.task, e.metric, e.value, e.split, e.n, e.protocol_id, e.results_sha256)
            for e in session.scalars(select(EvaluationRow).where(EvaluationRow.version_id == row.id))}
    architecture = session.scalar(select(BaseModelRow.architecture).join(
        ExpertRow, ExpertRow.base_model_id == BaseModelRow.id).where(ExpertRow.id == row.expert_id))
    added = 0
    for e in sorted(bundled, key=lambda e: e.created_at):
        protocol_id, spec = _protocol_here(e.protocol, specs[e.protocol], architecture, e.created_at)
        if (e.task, e.metric, e.value, e.split, e.n, protocol_id, e.results_sha256) in have:
            continue
        protocols.use(session, protocol_id, specs[e.protocol].task, spec)
        score = evaluations.add(session, row.id, Metric(e.task, e.metric, e.value, e.split, e.n), e.source,
                                protocol_id, e.results_sha256)
        score.created_at = e.created_at
        added += 1
    return added


def _protocol_here(protocol_id: str, protocol: BundleProtocol, architecture: str,
                   when: datetime) -> tuple[str, dict]:
    # A bundle from a registry that predates migration 0007 may hold Gemma scores taken without <bos> under
    # a measured protocol: they land where the migration would have put them, never beside valid ones.
    if protocols.taken_without_bos(architecture, protocol_id, protocol.task, when):
        return without_bos_id(protocol_id), without_bos_spec(protocol.task, protocol.spec)
    return protocol_id, protocol.spec


def _add_aliases(session: Session, row: VersionRow, version: BundleVersion, ref: str) -> list[str]:
    skipped = []
    for alias in version.aliases:
        taken = session.get(VersionAliasRow, (row.expert_id, alias))
        if taken is not None and taken.version_id != row.id:
            skipped.append(f"{version.name}@{alias} (already names another version here)")
            continue
        try:
            labels.set_alias(session, row, alias)
        except ConflictError as exc:
            skipped.append(f"{version.name}@{alias} ({exc})")
    return skipped

