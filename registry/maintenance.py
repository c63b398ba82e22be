"""``verify`` (re-hash every referenced blob) and ``gc`` (remove unreferenced ones)."""

from __future__ import annotations

from sqlalchemy import select

from t2reg.registry.blobs import BlobStore
from t2reg.registry.db import Database
from t2reg.registry.entities import GcReport, VerifyReport
from t2reg.registry.orm import EvaluationRow, ModelEvaluationRow, VersionRow


def referenced_blobs(db: Database) -> set[str]:
    """Every blob a row points to: expert files and per-question evaluation results."""
    with db.session() as session:
        found = set(session.scalars(select(VersionRow.blob_sha256).distinct()))
        for column in (EvaluationRow.results_sha256, ModelEvaluationRow.results_sha256):
            found |= set(session.scalars(select(column).where(column.is_not(None)).distinct()))
        return found


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
    return VerifyReport(len(referenced), tuple(missing), tuple(corrupt), unreferenced)


def gc(db: Database, blobs: BlobStore, grace_seconds: float = 600.0, dry_run: bool = False) -> GcReport:
    """Remove blobs no row points to and abandoned temp files.

    Files younger than ``grace_seconds`` stay: a publish in flight has written
    (or touched) its blob but not yet committed the row that points to it.
    """
    referenced = referenced_blobs(db)
    removed, freed, young = [], 0, 0
    for sha, path in blobs.iter_blobs():
        if sha in referenced:
            continue
        if blobs.age_seconds(path) < grace_seconds:
            young += 1
            continue
        removed.append(sha)
        if not dry_run:
            freed += blobs.remove(sha)
    temps = 0
    for path in blobs.iter_temp_files():
        if blobs.age_seconds(path) >= grace_seconds:
            temps += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    return GcReport(tuple(removed), temps, freed, young, dry_run)
