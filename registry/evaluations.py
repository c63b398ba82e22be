"""Evaluations and the ``best`` ranking, inside a session.

``best`` is a single indexed query: each evaluation row carries flags marking
it the newest for its (version, task, metric, protocol) and for its split,
kept current by :func:`add` in the same transaction, so ranking reads one index
range in score order and stops at the limit. Only scores measured under one
protocol are ranked together.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from sqlalchemy import select, true, update
from sqlalchemy.orm import Session

from t2reg.expert_file import Metric
from t2reg.protocols import Measurement
from t2reg.registry import protocols
from t2reg.registry.blob_store import sha256_of
from t2reg.registry.entities import EvaluationInfo, RankedVersion
from t2reg.registry.orm import BaseModelRow, EvaluationRow, ExpertRow, VersionRow
from t2reg.registry.validation import is_proportion, source_values
from t2reg.stats import intervals_overlap, wilson_interval
from t2reg.enums import VersionStatus


def add(session: Session, version_id: int, metric: Metric, source: str, protocol_id: str,
        results_sha256: str | None = None) -> EvaluationRow:
    """Record a score and make it the latest for its version, task, metric, protocol (and split)."""
    same = (
        EvaluationRow.version_id == version_id,
        EvaluationRow.task == metric.task,
        EvaluationRow.metric == metric.metric,
        EvaluationRow.protocol_id == protocol_id,
    )
    session.execute(update(EvaluationRow).where(*same, EvaluationRow.is_latest == true()).values(is_latest=False))
    same_split = EvaluationRow.split.is_(None) if metric.split is None else EvaluationRow.split == metric.split
    session.execute(
        update(EvaluationRow)
        .where(*same, same_split, EvaluationRow.is_latest_in_split == true())
        .values(is_latest_in_split=False)
    )
    row = EvaluationRow(version_id=version_id, is_latest=True, is_latest_in_split=True,
                        **EvaluationRow.columns_of(metric, source, protocol_id, results_sha256))
    session.add(row)
    session.flush()
    return row


def add_run(session: Session, version_id: int, run: Measurement, source: str) -> None:
    """Record one run's scores under its protocol (or each task's hand-reported one), naming its per-question
    results blob; the protocol's use is counted once for the run."""
    results_sha256 = None if run.results is None else sha256_of(run.results)
    for metric, protocol_id in protocols.assign(session, list(run.metrics), run.protocol):
        add(session, version_id, metric, source, protocol_id, results_sha256)


def latest_with_results(session: Session, version_id: int, task: str, protocol_id: str) -> EvaluationInfo | None:
    row = session.scalar(select(EvaluationRow).where(
        EvaluationRow.version_id == version_id, EvaluationRow.task == task, EvaluationRow.protocol_id == protocol_id,
        EvaluationRow.results_sha256.is_not(None)).order_by(EvaluationRow.id.desc()).limit(1))
    return None if row is None else row.to_entity()


def best(
    session: Session,
    task: str,
    metric: str,
    model_id: int | None = None,
    split: str | None = None,
    sources: Iterable[str] = (),
    limit: int = 5,
    protocol_id: str | None = None,
) -> list[RankedVersion]:
    """Live versions ranked by their most recent score for ``task``/``metric`` under one protocol
    (by default the task's most used measured one that has such scores)."""
    protocol_id = protocol_id or protocols.default_for(session, task, metric)
    if protocol_id is None:
        return []
    stmt = (
        select(EvaluationRow, VersionRow.version, VersionRow.source, ExpertRow.name, BaseModelRow.name)
        .join(VersionRow, VersionRow.id == EvaluationRow.version_id)
        .join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
        .join(BaseModelRow, BaseModelRow.id == ExpertRow.base_model_id)
        .where(EvaluationRow.task == task, EvaluationRow.metric == metric, EvaluationRow.protocol_id == protocol_id,
               VersionRow.status == VersionStatus.LIVE.value)
    )
    if is_proportion(metric):  # a registry written before scores were range-checked may hold 2 or 1e308
        stmt = stmt.where(EvaluationRow.value.between(0.0, 1.0))
    if split is None:
        stmt = stmt.where(EvaluationRow.is_latest == true())
    else:
        stmt = stmt.where(EvaluationRow.split == split, EvaluationRow.is_latest_in_split == true())
    if model_id is not None:
        stmt = stmt.where(ExpertRow.base_model_id == model_id)
    sources = tuple(s.value for s in source_values(sources))
    if sources:
        stmt = stmt.where(VersionRow.source.in_(sources))
    stmt = stmt.order_by(EvaluationRow.value.desc(), EvaluationRow.id.desc()).limit(limit)
    ranked = [ev.to_ranked(i, name, version, source, model)
              for i, (ev, version, source, name, model) in enumerate(session.execute(stmt), start=1)]
    return _with_intervals(ranked)


def _with_intervals(ranked: list[RankedVersion]) -> list[RankedVersion]:
    """Each proportion's 95% interval, and whether it overlaps the leader's (then the two are not told apart)."""
    out = []
    for row in ranked:
        interval = None
        if row.n and 0.0 <= row.value <= 1.0:
            interval = wilson_interval(round(row.value * row.n), row.n)
        out.append(dataclasses.replace(row, interval95=interval))
    leader = out[0].interval95 if out else None
    return [dataclasses.replace(r, overlaps_leader=i > 0 and leader is not None and r.interval95 is not None
                                and intervals_overlap(r.interval95, leader)) for i, r in enumerate(out)]


def metrics_for_task(session: Session, task: str) -> list[str]:
    """Metric names recorded for a task (for a helpful message when a ranking is empty)."""
    stmt = select(EvaluationRow.metric).where(EvaluationRow.task == task).distinct().order_by(EvaluationRow.metric)
    return list(session.scalars(stmt))
