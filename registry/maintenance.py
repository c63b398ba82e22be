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
from typing import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from t2reg.errors import ConflictError, T2RegError
from t2reg.registry import schema
from t2reg.registry.blobs import BlobStore
from t2reg.registry.blobs_db import DatabaseBlobStore
from t2reg.registry.db import Database, redact
from t2reg.registry.entities import GcReport, VerifyReport, as_utc
from t2reg.registry.orm import EvaluationRow, ExpertRow, ModelEvaluationRow, VersionRow, utcnow
from t2reg.vocabulary import VersionStatus

PURGED = VersionStatus.PURGED.value
DELETED = VersionStatus.DELETED.value


def referenced_blobs(db: Database, excluding: Collection[int] = ()) -> set[str]:
    """Every blob a row still needs: expert files of versions not purged (nor among ``excluding``), and
    per-question evaluation results."""
    with db.session() as session:
        return referenced_blobs_in(session, excluding)


def referenced_blobs_in(session: Session, excluding: Collection[int] = ()) -> set[str]:
    """:func:`referenced_blobs` inside ``session``'s transaction."""
    query = select(VersionRow.blob_sha256).where(VersionRow.status != PURGED)
    if excluding:
        query = query.where(VersionRow.id.not_in(list(excluding)))
    found = set(session.scalars(query.distinct()))
    for column in (EvaluationRow.results_sha256, ModelEvaluationRow.results_sha256):
        found |= set(session.scalars(select(column).where(column.is_not(None)).distinct()))
    return found


def discard_blob(db: Database, store: BlobStore, sha256: str, stamp: int | None) -> None:
    """Undo a blob a failed write landed (its rows did not commit): only when nobody touched it since (its
    mtime is still ``stamp``) and no row uses it (the same bytes may have been published meanwhile)."""
    try:
        if store.path(sha256).stat().st_mtime_ns != stamp:
            return
    except FileNotFoundError:
        return
    if sha256 not in referenced_blobs(db):
        store.remove(sha256)


def count_versions(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(VersionRow)) or 0


def verify(db: Database, blobs: BlobStore | DatabaseBlobStore) -> VerifyReport:
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
    blobs: BlobStore | DatabaseBlobStore,
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
        raise ConflictError(
            f"the blob store {blobs.root} is shared with registries gc cannot open ({'; '.join(unseen)}), so it "
            "cannot tell which blobs they still use; open them from here (same credentials), remove a stale "
            f"marker under {blobs.root / 'registries'}, or accept removing their blobs ({{shared_ok}})",
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


def _other_users(db: Database, blobs: BlobStore | DatabaseBlobStore) -> tuple[set[str], list[str], list[str]]:
    """Blobs referenced by every other registry whose marker lies in the store.

    Returns (their references, the registries read, the ones that could not be read).
    """
    referenced: set[str] = set()
    own = db.identity
    others, unseen = [], []
    for marker, database in blobs.users().items():
        if database == own:
            continue
        if database is None:
            unseen.append(f"unreadable marker {marker}")
            continue
        try:
            other = Database(database)  # never create: a registry that is gone must not reappear empty
        except T2RegError as exc:
            unseen.append(f"{redact(database)} ({exc})")
            continue
        try:
            if schema.check_schema(other) != "ok":
                raise ConflictError("it holds no registry")
            referenced |= referenced_blobs(other)
            others.append(redact(database))
        except T2RegError as exc:
            unseen.append(f"{redact(database)} ({exc})")
        finally:
            other.dispose()
    return referenced, others, unseen
