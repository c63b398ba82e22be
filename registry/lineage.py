"""A version's family, walked a generation at a time: what it came from and what was made from it.

Each generation costs one query for its edges, and the versions the graph holds are read together in one more,
so a graph of forty versions costs what a graph of two does (the web UI's lineage page draws it). Ancestors are
kept whatever their status (a deleted parent is still where a version came from); descendants are the live
versions made from it, as :meth:`t2reg.registry.Registry.derivations` lists them.
"""

from __future__ import annotations

from typing import Callable, Iterable

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from t2reg.enums import Source, VersionStatus
from t2reg.registry.derived import JOB_TAG, published_by
from t2reg.registry.entities import LineageGraph, RelatedVersion
from t2reg.registry.orm import BaseModelRow, ExpertRow, LineageRow, VersionRow, VersionTagRow

LIVE = VersionStatus.LIVE.value


def lineage_graph(session: Session, root: VersionRow, up: int, down: int, limit: int) -> LineageGraph:
    """``root``'s ancestors ``up`` generations back and its live descendants ``down`` generations on, at most
    ``limit`` versions in all (the nearest generations first)."""
    depth: dict[int, int] = {root.id: 0}  # version id -> generations from the root; insertion order is draw order
    links: dict[int, LineageRow] = {}
    frontier = [root.id]
    for generation in range(1, up + 1):
        rows = _parent_links(session, frontier) if frontier else []
        frontier = _admit(rows, lambda row: row.parent_id, -generation, depth, limit)
        links.update((row.id, row) for row in rows)
    frontier = [root.id]
    for generation in range(1, down + 1):
        rows = _child_links(session, frontier) if frontier else []
        frontier = _admit(rows, lambda row: row.child_id, generation, depth, limit)
        links.update((row.id, row) for row in rows)
    named = _related(session, depth)
    # An edge to a version past the walk's limits would point at nothing drawn.
    drawn = [row for row in links.values() if row.parent_id in named and row.child_id in named]
    return LineageGraph(
        named[root.id].ref,
        tuple(named[i] for i in depth if i in named),
        tuple(row.to_link(named[row.parent_id].ref, named[row.child_id].ref)
              for row in sorted(drawn, key=lambda row: row.id)),
    )


def _parent_links(session: Session, children: list[int]) -> list[LineageRow]:
    return list(session.scalars(select(LineageRow)
                                .where(LineageRow.child_id.in_(children), LineageRow.parent_id.is_not(None))
                                .order_by(LineageRow.id)))


def _child_links(session: Session, parents: list[int]) -> list[LineageRow]:
    return list(session.scalars(select(LineageRow)
                                .join(VersionRow, VersionRow.id == LineageRow.child_id)
                                .where(LineageRow.parent_id.in_(parents), VersionRow.status == LIVE)
                                .order_by(LineageRow.id)))


def _admit(rows: Iterable[LineageRow], end: Callable[[LineageRow], int | None], generation: int,
           depth: dict[int, int], limit: int) -> list[int]:
    """The versions at ``end`` of ``rows`` not seen before, while there is room: the next frontier."""
    admitted = []
    for row in rows:
        version = end(row)
        if version is not None and version not in depth and len(depth) < limit:
            depth[version] = generation
            admitted.append(version)
    return admitted


def _related(session: Session, depth: dict[int, int]) -> dict[int, RelatedVersion]:
    """Every version of the graph, named, with its model and the job that published it, in one query."""
    job = VersionTagRow.__table__.alias("job_tag")
    stmt = (select(VersionRow.id, ExpertRow.name, VersionRow.version, VersionRow.source, BaseModelRow.name,
                   job.c.value)
            .join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
            .join(BaseModelRow, BaseModelRow.id == ExpertRow.base_model_id)
            .outerjoin(job, and_(job.c.version_id == VersionRow.id, job.c.key == JOB_TAG))
            .where(VersionRow.id.in_(list(depth))))
    return {id_: RelatedVersion(f"{name}:{version}", Source(source), model,
                                published_by(tag), depth[id_])
            for id_, name, version, source, model, tag in session.execute(stmt)}
