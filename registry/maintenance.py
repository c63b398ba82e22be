"""``verify`` (re-hash every referenced blob) and ``gc`` (remove unreferenced ones, purge deleted versions).

``gc`` deletes files, so it refuses whenever it could be wrong about what is
still in use:

* the blob store is shared (another registry's marker lies in it) and that
  registry cannot be opened to read its references: refused, unless the caller
  says it knows (``shared_ok``); the references of every registry it can open
  are honoured;
* the registry holds no version at all, yet blobs would be removed (a mistyped
  database beside a real store looks exactly like that): refused without ``force``.

Purging (``purge_deleted``) turns versions soft-deleted longer than a grace
period into ``purged`` tombstones: their numbers stay taken, their rows and
lineage stay, and their files become unreferenced, so the same run frees them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from t2reg.errors import ConflictError, T2RegError
from t2reg.registry import schema
from t2reg.registry.blob_store import BlobStore, referenced_blobs
from t2reg.registry.db import Database, redact
from t2reg.registry.entities import GcReport, VerifyReport, as_utc
from t2reg.registry.orm import ExpertRow, VersionRow, utcnow
from t2reg.enums import VersionStatus

PURGED = VersionStatus.PURGED.value
DELETED = VersionStatus.DELETED.value


def count_versions(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(VersionRow)) or 0


def verify(db: Database, blobs: BlobStore) -> VerifyReport:
    """Every blob a row points to must exist and hash to its name."""
    referenced = referenced_blobs(db)
    missing, corrupt = [], []
    for sha in sorted(referenced):
        actual = blobs.hash_file(sha)
        if actual is None:
            missing.append(sha)
        elif actual != sha:
            corrupt.append(sha)
    unreferenced = tuple(sha for sha, _ in blobs.iter_blobs() if sha not in referenced)
    strays = tuple(str(p) for p in blobs.iter_strays())
    return VerifyReport(len(referenced), tuple(missing), tuple(corrupt), unreferenced, strays)


def purge_deleted(db: Database, grace_seconds: float, dry_run: bool = False) -> dict[int, str]:
    """Mark versions deleted at least ``grace_seconds`` ago as purged; return their ids and references."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)

    def work(session) -> dict[int, str]:
        rows = session.execute(
            select(VersionRow, ExpertRow.name).join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
            .where(VersionRow.status == DELETED).order_by(ExpertRow.name, VersionRow.version)
        ).all()
        due = {row.id: (row, name) for row, name in rows
               if row.deleted_at is not None and as_utc(row.deleted_at) <= cutoff}
        if not dry_run:
            for row, _ in due.values():
                row.status = PURGED
        return {id_: f"{name}:{row.version}" for id_, (row, name) in due.items()}

    if dry_run:  # only reads: works on a read-only registry too
        with db.session() as session:
            return work(session)
    return db.write(work)


def gc(
    db: Database,
    blobs: BlobStore,
    grace_seconds: float = 600.0,
    dry_run: bool = False,
    *,
    force: bool = False,
    shared_ok: bool = False,
    purge: bool = False,
    purge_grace_seconds: float = 7 * 86400.0,
) -> GcReport:
    """Remove blobs no row (of any registry using the store) points to, and abandoned temp files.

    Files younger than ``grace_seconds`` stay: a publish in flight has written
    (or touched) its blob but not yet committed the row that points to it.
    """
    others_referenced, others, unseen = _other_users(db, blobs)
    if unseen and not shared_ok:
        markers = unseen[0][1].parent
        raise ConflictError(
            f"the blob store {blobs.location} is shared with registries gc cannot open "
            f"({'; '.join(text for text, _ in unseen)}), so it cannot tell which blobs they still use; open them "
            f"from here (same credentials), remove a stale marker under {markers}, or accept removing their blobs "
            "({shared_ok})",
            options=["shared_ok"],
        )
    purged = purge_deleted(db, purge_grace_seconds, dry_run) if purge else {}
    referenced = referenced_blobs(db, excluding=purged) | others_referenced
    # each blob comes with a handle its store reads the age from (a path, or when the row was last stored)
    removable = [(sha, handle) for sha, handle in blobs.iter_blobs() if sha not in referenced]
    if removable and not force and count_versions(db) == 0:
        raise ConflictError(
            f"registry {db.display_url} holds no versions, yet gc would remove {len(removable)} blob(s) from "
            f"{blobs.location}: is this the registry that uses them? If it is, run again with {{force}}",
            options=["force"],
        )
    removed, freed, young = [], 0, 0
    for sha, handle in removable:
        if blobs.age_seconds(handle) < grace_seconds:
            young += 1
            continue
        if dry_run:
            removed.append(sha)
            continue
        size = blobs.remove(sha, untouched_for=grace_seconds)  # the age again, as late as the store allows
        if size or not blobs.exists(sha):
            removed.append(sha)
            freed += size
        else:
            young += 1
    temps = 0
    for path in blobs.iter_temp_files():
        if blobs.age_seconds(path) >= grace_seconds:
            temps += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    strays = tuple(str(p) for p in blobs.iter_strays())
    return GcReport(tuple(removed), temps, freed, young, dry_run, tuple(purged.values()), tuple(others), strays)


def _other_users(db: Database, blobs: BlobStore) -> tuple[set[str], list[str], list[tuple[str, Path]]]:
    """Blobs referenced by every other registry whose marker lies in the store.

    Returns (their references, the registries read, the ones that could not be read with their markers).
    """
    referenced: set[str] = set()
    own = db.identity
    others: list[str] = []
    unseen: list[tuple[str, Path]] = []
    for marker, database in blobs.users().items():
        if database == own:
            continue
        if database is None:
            unseen.append((f"unreadable marker {marker}", marker))
            continue
        try:
            other = Database(database)  # never create: a registry that is gone must not reappear empty
        except T2RegError as exc:
            unseen.append((f"{redact(database)} ({exc})", marker))
            continue
        try:
            if schema.check_schema(other) != "ok":
                raise ConflictError("it holds no registry")
            referenced |= referenced_blobs(other)
            others.append(redact(database))
        except T2RegError as exc:
            unseen.append((f"{redact(database)} ({exc})", marker))
        finally:
            other.dispose()
    return referenced, others, unseen
