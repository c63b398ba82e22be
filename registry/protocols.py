"""Protocols inside a session: registering the one a run used, and finding a task's most used."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, true
from sqlalchemy.orm import Session

from t2reg.architectures import needs_bos
from t2reg.errors import InvalidInputError, NotFoundError, Remedy, shown
from t2reg.expert_file import Metric
from t2reg.protocols import BOS_FIX_LANDED, NO_BOS_PREFIX, Protocol, legacy_id, reported_id, without_bos_id
from t2reg.registry.entities import as_utc
from t2reg.registry.orm import EvaluationRow, ProtocolRow
from t2reg.registry.validation import SPLIT_MAX, check_json, check_metric, check_text, validate_name, validate_task
from t2reg.specs import INT_MAX


def use(session: Session, protocol_id: str, task: str, spec: dict[str, Any]) -> ProtocolRow:
    """The protocol row (created on first use), its use count raised by one run."""
    row = session.get(ProtocolRow, protocol_id, with_for_update=True)
    if row is None:
        row = ProtocolRow(id=protocol_id, task=task, spec=spec, uses=0)
        session.add(row)
        session.flush()  # before the score rows that point at it: no relationship orders the inserts
    row.uses += 1
    return row


def reported(task: str) -> tuple[str, str, dict[str, Any]]:
    """The id, task and spec of a task's hand-recorded scores (no protocol known): :func:`use`'s arguments."""
    return reported_id(task), task, {"task": task, "reported": True,
                                     "note": "recorded by hand; how it was measured is not known"}


def assign(session: Session, metrics: list[Metric], protocol: Protocol | None) -> list[tuple[Metric, str]]:
    """Each metric with the id of the protocol it is recorded under (each protocol used once per call):
    ``protocol`` for all of them, or each metric's task's hand-reported protocol when there is none. Every
    score passes here on its way in (publish, record, a base model's evaluation): each is checked once more by
    the one rule for scores, whoever made it."""
    metrics = [check_metric(m) for m in metrics]
    if protocol is not None:
        stray = sorted({m.task for m in metrics} - {protocol.task})
        if stray:
            raise InvalidInputError(f"scores for {', '.join(stray)} cannot be recorded under a {protocol.task} "
                                    "protocol")
        use(session, protocol.id, protocol.task, protocol.to_dict())
        return [(m, protocol.id) for m in metrics]
    ids = {task: use(session, *reported(task)).id for task in sorted({m.task for m in metrics})}
    return [(m, ids[m.task]) for m in metrics]


def get(session: Session, protocol_id: str) -> ProtocolRow:
    row = session.get(ProtocolRow, protocol_id)
    if row is None:
        raise NotFoundError(f"no protocol {shown(protocol_id)}", remedy=Remedy("list the protocols", ("protocols",)))
    return row


def for_task(session: Session, task: str) -> list[ProtocolRow]:
    """A task's protocols, most used first."""
    return list(session.scalars(select(ProtocolRow).where(ProtocolRow.task == task)
                                .order_by(ProtocolRow.uses.desc(), ProtocolRow.created_at.desc())))


def some(session: Session, ids: set[str]) -> list[ProtocolRow]:
    return list(session.scalars(select(ProtocolRow).where(ProtocolRow.id.in_(sorted(ids))))) if ids else []


def every(session: Session) -> list[ProtocolRow]:
    return list(session.scalars(select(ProtocolRow).order_by(ProtocolRow.task, ProtocolRow.uses.desc())))


def default_for(session: Session, task: str, metric: str) -> str | None:
    """The task's most used measured protocol that has a current ``metric`` score; a legacy, hand-reported or
    voided one only when no measured protocol has any (one index probe per protocol)."""
    # sorted() is stable: within each kind the most used stays first.
    for row in sorted(for_task(session, task), key=lambda r: not is_measured(r.id, task)):
        has = exists().where(EvaluationRow.task == task, EvaluationRow.metric == metric,
                             EvaluationRow.protocol_id == row.id, EvaluationRow.is_latest == true())
        if session.scalar(select(has)):
            return row.id
    return None


def is_measured(protocol_id: str, task: str) -> bool:
    """False for the legacy, hand-reported and voided (``nobos``) protocols: nothing says how those scores were
    measured, or their id is no longer the hash of the spec they were measured under."""
    return protocol_id not in (legacy_id(task), reported_id(task)) and not protocol_id.startswith(NO_BOS_PREFIX)


def taken_without_bos(architecture: str, protocol_id: str, task: str, created_at: datetime) -> bool:
    """Whether a score of a model of class ``architecture`` was measured under a measured protocol before t2reg
    fed that family its ``<bos>``: migration 0007's rule, for scores that arrive later (bundles exported by an
    older registry)."""
    return needs_bos(architecture) and is_measured(protocol_id, task) and as_utc(created_at) < BOS_FIX_LANDED


NOTE_MAX = 500


def check_spec(protocol_id: str, task: str, spec: Any) -> dict[str, Any]:
    """``spec`` if it is what this registry writes for a protocol ``protocol_id`` of ``task`` (or an
    :class:`InvalidInputError` naming what is not): a measured protocol's spec is a :class:`Protocol` whose id is
    ``protocol_id``; a hand-reported, legacy or voided one holds its note (and a voided one the measured spec it
    replaced). Protocols arriving in a bundle pass here before anything is written: what is stored is read back
    by every ``best`` and ``protocols``."""
    check_text(protocol_id, "protocol id", 128)
    validate_task(task)
    check_json(spec, f"the spec of protocol {shown(protocol_id)}")
    if not isinstance(spec, dict):
        raise InvalidInputError(f"the spec of protocol {shown(protocol_id)} must be an object")
    if spec.get("task") != task:
        raise InvalidInputError(f"the spec of protocol {shown(protocol_id)} is not for task {task!r}")
    if protocol_id == reported_id(task):
        return _note_spec(protocol_id, spec, "reported")
    if protocol_id == legacy_id(task):
        return _note_spec(protocol_id, spec, "legacy")
    if protocol_id.startswith(NO_BOS_PREFIX):
        measured = protocol_id.removeprefix(NO_BOS_PREFIX)
        _note_spec(protocol_id, spec, "legacy", extra=("measured_as", "moved_uses"))
        if without_bos_id(measured) != protocol_id or not is_measured(measured, task):
            raise InvalidInputError(f"protocol {shown(protocol_id)} voids no measured protocol")
        _measured(measured, task, spec.get("measured_as"))
        moved = spec.get("moved_uses", 0)
        if isinstance(moved, bool) or not isinstance(moved, int) or not 0 <= moved <= INT_MAX:
            raise InvalidInputError(f"protocol {shown(protocol_id)}: moved_uses must be a whole number")
        return spec
    _measured(protocol_id, task, spec)
    return spec


def _note_spec(protocol_id: str, spec: dict[str, Any], flag: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    unknown = sorted(set(spec) - {"task", flag, "note", *extra})
    if unknown or spec.get(flag) is not True or not isinstance(spec.get("note", ""), str):
        raise InvalidInputError(f"protocol {shown(protocol_id)}: its spec must be {{task, {flag}: true, note}}"
                                + (f", not hold {shown(unknown[0], 40)}" if unknown else ""))
    check_text(spec.get("note", ""), f"the note of protocol {shown(protocol_id)}", NOTE_MAX)
    return spec


def _measured(protocol_id: str, task: str, spec: Any) -> Protocol:
    # A measured protocol's id is the hash of its spec: one that does not match would rank unlike scores together.
    try:
        protocol = Protocol.from_dict(spec)
    except (InvalidInputError, TypeError) as exc:
        raise InvalidInputError(f"protocol {shown(protocol_id)}: {exc}") from None
    validate_name(protocol.split, "protocol split", max_length=SPLIT_MAX)
    for name in ("mode", "prompt_version", "routing"):
        if getattr(protocol, name) is not None:
            check_text(getattr(protocol, name), f"protocol {name}", 128)
    stated = spec.get("id", protocol_id) if isinstance(spec, dict) else protocol_id
    if protocol.id != protocol_id or stated != protocol_id or protocol.task != task:
        raise InvalidInputError(f"protocol {shown(protocol_id)} does not match its spec")
    return protocol
