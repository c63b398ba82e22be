"""What every blob store does, which store a registry uses, and which blobs its rows need.

A registry keeps its blobs (expert files, per-question results) in one of two
stores: a folder (:class:`t2reg.registry.blobs.FileBlobStore`, which several
registries may share) or its own database
(:class:`t2reg.registry.blobs_db.DatabaseBlobStore`). Both satisfy
:class:`BlobStore`, so nothing outside them asks which one it holds. The choice
is recorded in the database, so every machine that opens the registry makes
the same one without being told.

Both are content-addressed (a blob is named by the sha256 of its bytes) and
keep one promise: no committed row points to a blob that is not there.
:meth:`BlobStore.write` is how rows that point to blobs are written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Protocol, TypeVar, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from t2reg.registry.db import Database
from t2reg.registry.orm import EvaluationRow, ModelEvaluationRow, RegistrySettingRow, VersionRow
from t2reg.enums import BlobStoreKind, VersionStatus

T = TypeVar("T")
BLOB_STORE_SETTING = "blob_store"


def sha256_of(data: bytes) -> str:
    """A blob's name: the sha256 of its bytes, as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed store of blobs (tests/registry/test_blob_store.py holds every store to this)."""

    kind: BlobStoreKind

    @property
    def location(self) -> str:
        """Where the blobs are, in words for messages."""
        ...

    def prepare(self) -> None:
        """Make the store ready to take blobs (``t2reg init``)."""
        ...

    def write(self, db: Database, blobs: Iterable[bytes], work: Callable[[Session], T]) -> T:
        """Store ``blobs`` and run ``work`` in a write transaction of ``db`` as one unit: when ``work`` commits
        every blob is there; when it fails, no blob it alone needed is left behind. Returns what ``work`` did."""
        ...

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` on its own; return its sha256 and whether it was not there before. A corrupt copy
        already there is replaced, so storing the bytes again repairs it."""
        ...

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its name (NotFoundError, IntegrityCheckError)."""
        ...

    def exists(self, sha256: str) -> bool:
        ...

    def copy_to(self, sha256: str, out: Path) -> Path:
        """Land a checked copy of the blob at ``out`` (never a corrupt one)."""
        ...

    def hash_file(self, sha256: str) -> str | None:
        """What the stored bytes actually hash to (``verify``), or None when the blob is missing."""
        ...

    def iter_blobs(self) -> Iterator[tuple[str, Any]]:
        """Every blob (gc's candidates): its name and the handle :meth:`age_seconds` reads its age from."""
        ...

    def age_seconds(self, handle: Any) -> float:
        """Seconds since the blob (or temp file) behind ``handle`` was last stored."""
        ...

    def remove(self, sha256: str, untouched_for: float = 0.0) -> int:
        """Delete a blob not stored again in the last ``untouched_for`` seconds; the bytes freed (0: it was
        gone already, or young)."""
        ...

    def iter_strays(self) -> Iterator[Path]:
        """Whatever lies among the blobs but is not one: reported, never read, never removed."""
        ...

    def iter_temp_files(self) -> Iterator[Path]:
        """Temp files an interrupted write left (gc removes them past the grace)."""
        ...

    def register_user(self, database: str) -> None:
        """Note that the registry at ``database`` (an identity URL) uses this store."""
        ...

    def users(self) -> dict[Path, str | None]:
        """Each registry noted as using the store: its marker -> its database (None: unreadable marker)."""
        ...


# -- which store a registry uses ------------------------------------------------


def recorded_blob_store(db: Database) -> BlobStoreKind | None:
    """The store the registry recorded (None: none recorded, so files, as before revision 0006)."""
    with db.session() as session:
        return recorded_blob_store_in(session)


def recorded_blob_store_in(session: Session) -> BlobStoreKind | None:
    value = session.scalar(select(RegistrySettingRow.value).where(RegistrySettingRow.key == BLOB_STORE_SETTING))
    return None if value is None else BlobStoreKind(value)


def record_blob_store(session: Session, kind: BlobStoreKind) -> None:
    row = session.get(RegistrySettingRow, BLOB_STORE_SETTING)
    if row is None:
        session.add(RegistrySettingRow(key=BLOB_STORE_SETTING, value=kind.value))
    else:
        row.value = kind.value


# -- which blobs the rows need --------------------------------------------------


def referenced_blobs(db: Database, excluding: Collection[int] = ()) -> set[str]:
    """Every blob a row still needs: expert files of versions not purged (nor among ``excluding``), and
    per-question evaluation results."""
    with db.session() as session:
        return referenced_blobs_in(session, excluding)


def referenced_blobs_in(session: Session, excluding: Collection[int] = ()) -> set[str]:
    """:func:`referenced_blobs` inside ``session``'s transaction."""
    query = select(VersionRow.blob_sha256).where(VersionRow.status != VersionStatus.PURGED.value)
    if excluding:
        query = query.where(VersionRow.id.not_in(list(excluding)))
    found = set(session.scalars(query.distinct()))
    for column in (EvaluationRow.results_sha256, ModelEvaluationRow.results_sha256):
        found |= set(session.scalars(select(column).where(column.is_not(None)).distinct()))
    return found
