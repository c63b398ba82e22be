"""Tags (free key/value pairs) and aliases (movable names) on versions."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from t2reg.errors import ConflictError, NotFoundError, shown
from t2reg.registry.orm import ExpertRow, VersionAliasRow, VersionRow, VersionTagRow
from t2reg.registry.validation import validate_name
from t2reg.enums import VersionStatus


def set_tags(session: Session, row: VersionRow, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        existing = session.get(VersionTagRow, (row.id, key))
        if existing is None:
            session.add(VersionTagRow(version_id=row.id, key=key, value=value))
        else:
            existing.value = value


def remove_tags(session: Session, row: VersionRow, keys: list[str]) -> None:
    missing = [k for k in keys if session.get(VersionTagRow, (row.id, k)) is None]
    if missing:
        raise NotFoundError(f"no tag {shown(missing[0])} on this version")
    session.execute(delete(VersionTagRow).where(VersionTagRow.version_id == row.id, VersionTagRow.key.in_(keys)))


def set_alias(session: Session, row: VersionRow, alias: str, move: bool = False) -> None:
    """Point ``alias`` at ``row``; moving it off another version needs ``move``."""
    validate_name(alias, "alias")
    if alias.isdigit():
        raise ConflictError(f"alias {shown(alias)} would read as a version number")
    if row.status != VersionStatus.LIVE.value:
        raise ConflictError("cannot alias a deleted version")
    existing = session.get(VersionAliasRow, (row.expert_id, alias))
    if existing is None:
        session.add(VersionAliasRow(expert_id=row.expert_id, alias=alias, version_id=row.id))
        return
    if existing.version_id == row.id:
        return
    if not move:
        other = session.get(VersionRow, existing.version_id)
        expert = session.get(ExpertRow, row.expert_id)
        raise ConflictError(
            f"alias {alias!r} already points at {expert.name}:{other.version}; move it explicitly ({{force}})",
            options=["force"],
        )
    existing.version_id = row.id

