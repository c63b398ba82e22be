"""Experts and their versions, inside a session: landing, lookup, listing, deletion.

A version lands one way, :func:`land_version`, inside the blob store's write
(:meth:`t2reg.registry.blob_store.BlobStore.write`) so its file and its rows
commit together: ``publish`` calls it (and every expert t2reg derives goes
through ``publish``), and so does bundle import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable

from sqlalchemy import Select, and_, case, exists, false, func, insert, select, true
from sqlalchemy.orm import Session, aliased

from t2reg.errors import ConflictError, NotFoundError
from t2reg.expert_file import Expert
from t2reg.registry import base_models, protocols
from t2reg.registry.blob_store import sha256_of
from t2reg.registry.entities import Derivation, EvaluationInfo, ExpertVersion, Lineage, ListedPage
from t2reg.registry.orm import (
    BaseModelRow,
    utcnow,
    EvaluationRow,
    ExpertRow,
    LineageRow,
    ProtocolRow,
    VersionAliasRow,
    VersionRow,
    VersionTagRow,
)
from t2reg.registry.filters import Clause, Filter
from t2reg.registry.validation import Reference, is_proportion, source_values
from t2reg.enums import ListSort, Source, VersionStatus

LIVE = VersionStatus.LIVE.value


@dataclass(frozen=True)
class NewVersion:
    """A version about to land, checked: what its publisher chose and its expert file (bytes, and parsed).

    The rest of what an :class:`ExpertVersion` shows is not restated here: the file's facts (hash, size,
    parameters, metadata) are read from the file, the number, status and time are given by landing, aliases
    and scores are added beside it.
    """

    name: str
    model_id: int
    task: str | None
    description: str
    source: Source
    data: bytes
    expert: Expert
    tags: tuple[tuple[str, str], ...] = ()
    lineage: tuple[tuple[int | None, Lineage], ...] = ()  # (parent version id, edge)

    @cached_property
    def sha256(self) -> str:
        return sha256_of(self.data)


def land_version(session: Session, new: NewVersion) -> VersionRow:
    """Create the expert if needed and add ``new`` as its next version, with its tags and lineage.

    Call it inside :meth:`BlobStore.write <t2reg.registry.blob_store.BlobStore.write>` with ``new.data`` among
    the blobs. The number is ``MAX(version) + 1`` computed by the INSERT itself; a concurrent publisher that
    took the same number makes this transaction fail on the unique constraint, and the caller retries it.
    """
    expert = _lock_or_create_expert(session, new)
    next_version = (
        select(func.coalesce(func.max(VersionRow.version), 0) + 1)
        .where(VersionRow.expert_id == expert.id)
        .scalar_subquery()
    )
    version_id = session.execute(
        insert(VersionRow)
        .values(
            expert_id=expert.id,
            version=next_version,
            blob_sha256=new.sha256,
            size=len(new.data),
            n_params=new.expert.n_params,
            parametrization=new.expert.meta.parametrization,
            renormalize=new.expert.meta.renormalize,
            source=new.source.value,
            status=LIVE,
            meta=new.expert.meta.to_header(),
        )
        .returning(VersionRow.id)
    ).scalar_one()
    row = session.get(VersionRow, version_id)
    for key, value in new.tags:
        session.add(VersionTagRow(version_id=row.id, key=key, value=value))
    for parent_id, edge in new.lineage:
        session.add(LineageRow(child_id=row.id, parent_id=parent_id, relation=edge.relation.value, weight=edge.weight,
                               params=dict(edge.params)))
    return row


def _lock_or_create_expert(session: Session, new: NewVersion) -> ExpertRow:
    # FOR UPDATE serialises publishers of one expert on PostgreSQL; SQLite's
    # BEGIN IMMEDIATE already does, and SQLAlchemy leaves the clause out there.
    expert = session.scalar(select(ExpertRow).where(ExpertRow.name == new.name).with_for_update())
    if expert is None:
        expert = ExpertRow(name=new.name, base_model_id=new.model_id, task=new.task, description=new.description)
        session.add(expert)
        session.flush()
    check_owner(session, new.name, new.model_id)
    return expert


def check_owner(session: Session, name: str, model_id: int) -> None:
    """Refuse adding a version to an expert that belongs to another base model."""
    owner = session.scalar(select(ExpertRow.base_model_id).where(ExpertRow.name == name))
    if owner is not None and owner != model_id:
        model = session.get(BaseModelRow, owner)
        raise ConflictError(f"expert {name!r} belongs to model {model.name!r}; choose another {{name}}",
                            options=["name"])


def resolve(session: Session, ref: Reference, live_only: bool = False) -> VersionRow:
    """The version a reference names; ``NAME`` alone means the latest live version."""
    expert = session.scalar(select(ExpertRow).where(ExpertRow.name == ref.name))
    if expert is None:
        raise NotFoundError(f"no expert named {ref.name!r}")
    if ref.alias is not None:
        row = session.scalar(
            select(VersionRow)
            .join(VersionAliasRow, VersionAliasRow.version_id == VersionRow.id)
            .where(VersionAliasRow.expert_id == expert.id, VersionAliasRow.alias == ref.alias)
        )
        if row is None:
            raise NotFoundError(f"expert {ref.name!r} has no alias {ref.alias!r}")
    elif ref.version is not None:
        row = session.scalar(select(VersionRow).where(VersionRow.expert_id == expert.id, VersionRow.version == ref.version))
        if row is None:
            raise NotFoundError(f"expert {ref.name!r} has no version {ref.version}")
    else:
        row = session.scalar(
            select(VersionRow)
            .where(VersionRow.expert_id == expert.id, VersionRow.status == LIVE)
            .order_by(VersionRow.version.desc())
            .limit(1)
        )
        if row is None:
            raise NotFoundError(f"expert {ref.name!r} has no live version")
    if live_only and row.status != LIVE:
        raise NotFoundError(f"{expert.name}:{row.version} is {row.status}")
    return row


def list_versions(
    session: Session,
    model_id: int | None = None,
    task: str | None = None,
    sources: Iterable[str] = (),
    all_versions: bool = False,
    where: Filter | None = None,
) -> list[ExpertVersion]:
    """Latest live version of each matching expert, or every live version with ``all_versions``."""
    stmt = _narrowed(session, select(VersionRow, ExpertRow, BaseModelRow.name).select_from(VersionRow),
                     model_id, task, sources, all_versions, where)
    stmt = stmt.order_by(ExpertRow.name, VersionRow.version)
    return [v.to_entity(e, model) for v, e, model in session.execute(stmt)]


def _narrowed(session: Session, stmt: Select, model_id: int | None = None, task: str | None = None,
              sources: Iterable[str] = (), all_versions: bool = False, where: Filter | None = None) -> Select:
    """``stmt`` (selecting from versions) joined to its expert and base model, cut to the live versions that
    :func:`list_versions` lists."""
    stmt = (
        stmt.join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
        .join(BaseModelRow, BaseModelRow.id == ExpertRow.base_model_id)
        .where(VersionRow.status == LIVE)
    )
    if not all_versions:
        latest = (
            select(VersionRow.expert_id, func.max(VersionRow.version).label("version"))
            .where(VersionRow.status == LIVE)
            .group_by(VersionRow.expert_id)
            .subquery()
        )
        stmt = stmt.join(latest, (latest.c.expert_id == VersionRow.expert_id) & (latest.c.version == VersionRow.version))
    if model_id is not None:
        stmt = stmt.where(ExpertRow.base_model_id == model_id)
    if task is not None:
        stmt = stmt.where(ExpertRow.task == task)
    sources = tuple(s.value for s in source_values(sources))
    if sources:
        stmt = stmt.where(VersionRow.source.in_(sources))
    for clause in where.clauses if where else ():
        stmt = stmt.where(_condition(session, clause))
    return stmt


def list_page(session: Session, where: Filter | None, sort: ListSort, descending: bool, offset: int, limit: int,
              metric: str) -> ListedPage:
    """One page of :func:`list_versions`'s experts sorted by ``sort``, with the total and each one's score
    (its newest ``metric`` under its task's default protocol, as ``best`` ranks it).

    Three queries whatever the registry's size: the count, the page (sorted and cut by the database; sorting by
    score outer-joins each version's score row through the evaluation index) and the page's scores. Versions
    without a value in the sorted column (no task, no score) come last in either direction; ties are broken by
    name and version, so pages never overlap."""
    total = session.scalar(_narrowed(session, select(func.count()).select_from(VersionRow), where=where)) or 0
    defaults = _default_protocols(session, metric)
    stmt = _narrowed(session, select(VersionRow, ExpertRow, BaseModelRow.name).select_from(VersionRow), where=where)
    if sort is ListSort.SCORE:
        scored = aliased(EvaluationRow)
        stmt = stmt.outerjoin(scored, _score_of(scored, metric, defaults))
        column = scored.value
    else:
        column = _SORTED[sort]
    direction = (lambda c: c.desc()) if descending else (lambda c: c.asc())
    ties = (direction(ExpertRow.name), direction(VersionRow.version)) if sort is ListSort.NAME else \
        (ExpertRow.name, VersionRow.version)
    stmt = stmt.order_by(column.is_(None), direction(column), *ties).offset(offset).limit(limit)
    rows = session.execute(stmt).all()
    scores = _scores(session, [v.id for v, _, _ in rows], metric, defaults)
    versions = tuple(v.to_entity(e, model) for v, e, model in rows)
    return ListedPage(versions, total, {version.ref: scores[row.id] for version, (row, _, _) in zip(versions, rows)
                                        if row.id in scores})


_SORTED = {ListSort.NAME: ExpertRow.name, ListSort.MODEL: BaseModelRow.name, ListSort.TASK: ExpertRow.task,
           ListSort.SOURCE: VersionRow.source, ListSort.CREATED: VersionRow.created_at}


def _default_protocols(session: Session, metric: str) -> dict[str, str]:
    """Each task's default protocol for ``metric`` (the one ``best`` ranks under), for the tasks that have one."""
    tasks = session.scalars(select(ProtocolRow.task).distinct().order_by(ProtocolRow.task))
    return {task: protocol for task in tasks if (protocol := protocols.default_for(session, task, metric))}


def _score_of(scored: Any, metric: str, defaults: dict[str, str]):
    """The join condition that picks a version's score in ``best``'s sense: the row marked newest for its
    version, ``metric`` and its expert's task's default protocol, in range if a proportion."""
    if not defaults:
        return false()
    # No condition on the score's own task: a protocol belongs to one task, so naming the protocol names it.
    # With one, SQLite reads each version's score off the ranking index (the task's whole range of scores, once
    # per version: 3 s for a page on 100,000 versions, bench/ui.py) instead of the version's few rows.
    condition = and_(scored.version_id == VersionRow.id, scored.metric == metric, scored.is_latest == true(),
                     scored.protocol_id == case(defaults, value=ExpertRow.task))
    if is_proportion(metric):  # as best leaves out a registry's out-of-range legacy scores
        condition = and_(condition, scored.value.between(0.0, 1.0))
    return condition


def _scores(session: Session, version_ids: list[int], metric: str,
            defaults: dict[str, str]) -> dict[int, EvaluationInfo]:
    """The scores of a page's versions, by version id, in one query."""
    if not version_ids or not defaults:
        return {}
    scored = aliased(EvaluationRow)
    stmt = (select(scored).select_from(VersionRow).join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
            .join(scored, _score_of(scored, metric, defaults)).where(VersionRow.id.in_(version_ids)))
    return {row.version_id: row.to_entity() for row in session.scalars(stmt)}


def find_derived(session: Session, parent_id: int, relation: str, params: dict[str, Any]) -> VersionRow | None:
    """The newest live child of ``parent_id`` by ``relation`` whose lineage params equal ``params``."""
    stmt = (
        select(VersionRow, LineageRow.params)
        .join(LineageRow, LineageRow.child_id == VersionRow.id)
        .where(LineageRow.parent_id == parent_id, LineageRow.relation == relation, VersionRow.status == LIVE)
        .order_by(VersionRow.id.desc())
    )
    for row, recorded in session.execute(stmt):
        if recorded == params:
            return row
    return None


def _condition(session: Session, clause: Clause):
    if clause.key == "model":
        ids = [base_models.get_model(session, ref).id for ref in clause.values]
        return ExpertRow.base_model_id.in_(ids)
    if clause.key == "task":
        return ExpertRow.task.in_(clause.values)
    if clause.key == "source":
        return VersionRow.source.in_(clause.values)
    if clause.key == "name":
        return ExpertRow.name.in_(clause.values)
    tag = clause.key.removeprefix("tag.")
    return exists().where(VersionTagRow.version_id == VersionRow.id, VersionTagRow.key == tag,
                          VersionTagRow.value.in_(clause.values))


def soft_delete(session: Session, row: VersionRow) -> None:
    """Mark a version deleted and drop its aliases; its number is never reused."""
    row.status = VersionStatus.DELETED.value
    row.deleted_at = utcnow()
    session.query(VersionAliasRow).filter(VersionAliasRow.version_id == row.id).delete()


def describe(session: Session, row: VersionRow) -> ExpertVersion:
    """The full domain object: tags, aliases, evaluations and lineage included."""
    expert = session.get(ExpertRow, row.expert_id)
    model = session.get(BaseModelRow, expert.base_model_id)
    tags = {t.key: t.value for t in session.scalars(select(VersionTagRow).where(VersionTagRow.version_id == row.id))}
    aliases = tuple(
        session.scalars(select(VersionAliasRow.alias).where(VersionAliasRow.version_id == row.id).order_by(VersionAliasRow.alias))
    )
    evals = tuple(
        e.to_entity()
        for e in session.scalars(
            select(EvaluationRow).where(EvaluationRow.version_id == row.id).order_by(EvaluationRow.id)
        )
    )
    return row.to_entity(expert, model.name, tags=tags, aliases=aliases, evaluations=evals, lineage=_lineage(session, row))


def _lineage(session: Session, row: VersionRow) -> tuple[Lineage, ...]:
    parents = select(LineageRow, VersionRow.version, ExpertRow.name).outerjoin(
        VersionRow, VersionRow.id == LineageRow.parent_id
    ).outerjoin(ExpertRow, ExpertRow.id == VersionRow.expert_id).where(LineageRow.child_id == row.id).order_by(LineageRow.id)
    return tuple(link.to_entity(f"{name}:{version}" if name else None) for link, version, name in session.execute(parents))


def derivations(session: Session, row: VersionRow) -> tuple[Derivation, ...]:
    """The live versions made from ``row`` (transfers, mixtures it is a component of, controls), in one query."""
    stmt = (select(LineageRow, VersionRow.version, VersionRow.source, ExpertRow.name)
            .join(VersionRow, VersionRow.id == LineageRow.child_id)
            .join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
            .where(LineageRow.parent_id == row.id, VersionRow.status == LIVE)
            .order_by(LineageRow.id))
    return tuple(Derivation(f"{name}:{version}", Source(source), *_edge_fields(link))
                 for link, version, source, name in session.execute(stmt))


def _edge_fields(link: LineageRow) -> tuple:
    edge = link.to_entity(None)
    return edge.relation, edge.weight, edge.params


def count_all(session: Session) -> int:
    """Every version ever published here, deleted and purged ones included."""
    return session.scalar(select(func.count()).select_from(VersionRow)) or 0
