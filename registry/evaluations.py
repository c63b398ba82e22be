"""Evaluations and the ``best`` ranking, inside a session.

``best`` is a single indexed query: each evaluation row carries flags marking
it the newest for its (version, task, metric) and for its split, kept current
by :func:`add` in the same transaction, so ranking reads one index range in
score order and stops at the limit.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import select, true, update
from sqlalchemy.orm import Session

from t2reg.expert_file import Metric
from t2reg.registry.entities import RankedVersion
from t2reg.registry.orm import BaseModelRow, EvaluationRow, ExpertRow, VersionRow
from t2reg.registry.validation import source_values
from t2reg.vocabulary import VersionStatus


def add(session: Session, version_id: int, metric: Metric, source: str) -> EvaluationRow:
    """Record a score and make it the latest for its version, task, metric (and split)."""
    same = (
        EvaluationRow.version_id == version_id,
        EvaluationRow.task == metric.task,
        EvaluationRow.metric == metric.metric,
    )
    session.execute(update(EvaluationRow).where(*same, EvaluationRow.is_latest == true()).values(is_latest=False))
    same_split = EvaluationRow.split.is_(None) if metric.split is None else EvaluationRow.split == metric.split
    session.execute(
        update(EvaluationRow)
        .where(*same, same_split, EvaluationRow.is_latest_in_split == true())
        .values(is_latest_in_split=False)
    )
    row = EvaluationRow(version_id=version_id, is_latest=True, is_latest_in_split=True,
                        **EvaluationRow.columns_of(metric, source))
    session.add(row)
    session.flush()
    return row


def best(
    session: Session,
    task: str,
    metric: str,
    model_id: int | None = None,
    split: str | None = None,
    sources: Iterable[str] = (),
    limit: int = 5,
) -> list[RankedVersion]:
    """Live versions ranked by their most recent score for ``task``/``metric``."""
    stmt = (
        select(EvaluationRow, VersionRow.version, VersionRow.source, ExpertRow.name, BaseModelRow.name)
        .join(VersionRow, VersionRow.id == EvaluationRow.version_id)
        .join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
        .join(BaseModelRow, BaseModelRow.id == ExpertRow.base_model_id)
        .where(EvaluationRow.task == task, EvaluationRow.metric == metric, VersionRow.status == VersionStatus.LIVE.value)
    )
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
    return [ev.to_ranked(i, name, version, source, model)
            for i, (ev, version, source, name, model) in enumerate(session.execute(stmt), start=1)]


def metrics_for_task(session: Session, task: str) -> list[str]:
    """Metric names recorded for a task (for a helpful message when a ranking is empty)."""
    stmt = select(EvaluationRow.metric).where(EvaluationRow.task == task).distinct().order_by(EvaluationRow.metric)
    return list(session.scalars(stmt))
