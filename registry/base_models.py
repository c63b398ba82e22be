"""Base models and their aliases, inside a session."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from t2reg.errors import ConflictError, NotFoundError, Remedy, shown
from t2reg.expert_file import Metric
from t2reg.registry.entities import EvaluationInfo, ModelInfo
from t2reg.registry.model_sources import ModelSpec
from t2reg.registry.orm import BaseModelRow, ModelAliasRow, ModelEvaluationRow
from t2reg.registry.validation import validate_model_name, validate_name, validate_revision


def add_model(session: Session, spec: ModelSpec, aliases: tuple[str, ...] = ()) -> BaseModelRow:
    """Register a model, or add aliases to an identical one already registered."""
    validate_model_name(spec.name)
    validate_revision(spec.revision)
    row = session.scalar(select(BaseModelRow).where(BaseModelRow.name == spec.name))
    if row is None:
        row = BaseModelRow(
            name=spec.name,
            revision=spec.revision,
            architecture=spec.architecture,
            source=spec.source,
            location=spec.location,
            config=dict(spec.config),
            shapes=spec.shapes(),
        )
        session.add(row)
        session.flush()
    elif row.shapes != spec.shapes():
        raise ConflictError(f"model {shown(spec.name)} is already registered with other shapes; choose another {{name}}",
                            options=["name"])
    elif spec.location and spec.location != row.location:
        # Same model, now with weights (e.g. a built-in shape table gets its converted GGUF).
        row.location, row.source, row.config = spec.location, spec.source, dict(spec.config)
        row.revision = spec.revision or row.revision
    for alias in dict.fromkeys(spec.aliases + aliases):
        add_alias(session, row, alias)
    return row


def add_alias(session: Session, model: BaseModelRow, alias: str) -> None:
    validate_name(alias, "model alias")
    existing = session.get(ModelAliasRow, alias)
    if existing is not None:
        if existing.model_id != model.id:
            owner = session.get(BaseModelRow, existing.model_id)
            raise ConflictError(f"model alias {shown(alias)} already names model {shown(owner.name)}")
        return
    clash = session.scalar(select(BaseModelRow.id).where(BaseModelRow.name == alias, BaseModelRow.id != model.id))
    if clash is not None:
        raise ConflictError(f"model alias {shown(alias)} is the name of another registered model")
    session.add(ModelAliasRow(alias=alias, model_id=model.id))


def find_model(session: Session, ref: str) -> BaseModelRow | None:
    alias = session.get(ModelAliasRow, ref)
    if alias is not None:
        return session.get(BaseModelRow, alias.model_id)
    return session.scalar(select(BaseModelRow).where(BaseModelRow.name == ref))


def get_model(session: Session, ref: str) -> BaseModelRow:
    row = find_model(session, ref)
    if row is None:
        known = sorted(session.scalars(select(ModelAliasRow.alias)))
        hint = f"; known aliases: {', '.join(known)}" if known else ""
        raise NotFoundError(f"unknown model {shown(ref)}{hint}",
                            remedy=Remedy("register it", ("model", "add"), ("MODEL",)))
    return row


def aliases_of(session: Session, model_id: int) -> tuple[str, ...]:
    stmt = select(ModelAliasRow.alias).where(ModelAliasRow.model_id == model_id).order_by(
        ModelAliasRow.created_at, ModelAliasRow.alias
    )
    return tuple(session.scalars(stmt))


def to_info(session: Session, row: BaseModelRow) -> ModelInfo:
    return row.to_entity(aliases_of(session, row.id))


def list_models(session: Session) -> list[ModelInfo]:
    """Every model with its aliases: two queries, however many models (a page lists them all)."""
    rows = session.scalars(select(BaseModelRow).order_by(BaseModelRow.name)).all()
    aliases: dict[int, list[str]] = {}
    every = select(ModelAliasRow.model_id, ModelAliasRow.alias).order_by(ModelAliasRow.created_at,
                                                                         ModelAliasRow.alias)
    for model_id, alias in session.execute(every):
        aliases.setdefault(model_id, []).append(alias)
    return [row.to_entity(tuple(aliases.get(row.id, ()))) for row in rows]


def add_evaluation(session: Session, model_id: int, metric: Metric, source: str, protocol_id: str,
                   results_sha256: str | None = None) -> EvaluationInfo:
    row = ModelEvaluationRow(model_id=model_id, **ModelEvaluationRow.columns_of(metric, source, protocol_id,
                                                                                results_sha256))
    session.add(row)
    session.flush()
    return row.to_entity()


def latest_with_results(session: Session, model_id: int, task: str, protocol_id: str) -> EvaluationInfo | None:
    row = session.scalar(select(ModelEvaluationRow).where(
        ModelEvaluationRow.model_id == model_id, ModelEvaluationRow.task == task,
        ModelEvaluationRow.protocol_id == protocol_id, ModelEvaluationRow.results_sha256.is_not(None))
        .order_by(ModelEvaluationRow.id.desc()).limit(1))
    return None if row is None else row.to_entity()


def evaluations(session: Session, model_id: int, task: str | None = None) -> list[EvaluationInfo]:
    stmt = select(ModelEvaluationRow).where(ModelEvaluationRow.model_id == model_id)
    if task is not None:
        stmt = stmt.where(ModelEvaluationRow.task == task)
    return [r.to_entity() for r in session.scalars(stmt.order_by(ModelEvaluationRow.id))]
