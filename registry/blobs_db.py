"""The database blob store (a :class:`~t2reg.registry.blob_store.BlobStore`): blobs as rows of the registry's
own ``blobs`` table.

Content-addressed like the file store (:mod:`t2reg.registry.blobs`). What it
adds is that a blob is written in the caller's transaction
(:meth:`DatabaseBlobStore.put_in`, which :meth:`DatabaseBlobStore.write` uses):
a publish inserts the expert file and the version row that points to it in one
commit, so neither exists without the other, and any machine that reaches the
database reaches every blob.

Two publishers of the same bytes race on the primary key; the loser's
transaction fails with a conflict and :meth:`Database.write` runs it again,
when it finds the blob there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from t2reg.errors import IntegrityCheckError, NotFoundError
from t2reg.files import land_bytes
from t2reg.registry.blob_store import sha256_of
from t2reg.registry.db import Database
from t2reg.registry.entities import as_utc
from t2reg.registry.orm import BlobRow, utcnow
from t2reg.enums import BlobStoreKind

T = TypeVar("T")


class DatabaseBlobStore:
    """Blobs in the ``blobs`` table of ``db``."""

    kind = BlobStoreKind.DATABASE

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def location(self) -> str:
        return f"the database {self.db.display_url}"

    def prepare(self) -> None:
        """Nothing to do: the schema made the table."""

    def write(self, db: Database, blobs: Iterable[bytes], work: Callable[[Session], T]) -> T:
        """Insert ``blobs`` and run ``work`` in the same transaction of ``db`` (this store's database)."""
        blobs = list(blobs)

        def unit(session: Session) -> T:
            for data in blobs:
                self.put_in(session, data)
            return work(session)

        return db.write(unit)

    def put_in(self, session: Session, data: bytes) -> str:
        """Store ``data`` inside ``session``'s transaction; return its sha256.

        A row already there is kept only if its bytes still hash to its name: a corrupt one is
        rewritten, so storing the bytes again repairs it (as in the file store).
        """
        sha = sha256_of(data)
        row = session.get(BlobRow, sha)
        if row is None:
            session.add(BlobRow(sha256=sha, size=len(data), data=data))
            session.flush()  # a racing insert of the same bytes fails here, and the whole unit is retried
        else:
            if sha256_of(row.data) != sha:
                row.data, row.size = data, len(data)
            row.touched_at = utcnow()  # keeps a concurrent gc's grace period from taking it
        return sha

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` in its own transaction; return its sha256 and whether it was new."""
        sha = sha256_of(data)
        existed = self.exists(sha)
        return self.db.write(lambda session: self.put_in(session, data)), not existed

    def exists(self, sha256: str) -> bool:
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(BlobRow).where(BlobRow.sha256 == sha256)) > 0

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its name."""
        with self.db.session() as session:
            data = session.scalar(select(BlobRow.data).where(BlobRow.sha256 == sha256))
        if data is None:
            raise NotFoundError(f"blob {sha256} is missing from {self.location}")
        if sha256_of(data) != sha256:
            raise IntegrityCheckError(f"blob {sha256} is corrupt: its bytes hash to something else")
        return bytes(data)

    def copy_to(self, sha256: str, out: Path) -> Path:
        return land_bytes(out, self.read(sha256))

    def hash_file(self, sha256: str) -> str | None:
        """The actual sha256 of the stored bytes, or None when the blob is missing."""
        with self.db.session() as session:
            data = session.scalar(select(BlobRow.data).where(BlobRow.sha256 == sha256))
        return None if data is None else sha256_of(data)

    def iter_blobs(self) -> Iterator[tuple[str, datetime]]:
        """Every blob's name and when it was last stored (the handle :meth:`age_seconds` takes)."""
        with self.db.session() as session:
            rows = session.execute(select(BlobRow.sha256, BlobRow.touched_at).order_by(BlobRow.sha256)).all()
        yield from ((sha, as_utc(touched)) for sha, touched in rows)

    def iter_strays(self) -> Iterator[Path]:
        return iter(())  # a table holds nothing but blobs

    def iter_temp_files(self) -> Iterator[Path]:
        return iter(())  # a blob lands with its transaction: nothing is ever half-written

    def register_user(self, database: str) -> None:
        """Nothing to do: this store belongs to exactly one registry, the database it lives in."""

    def users(self) -> dict[Path, str | None]:
        return {}

    def remove(self, sha256: str, untouched_for: float = 0.0) -> int:
        """Delete a blob not stored again in the last ``untouched_for`` seconds; return the bytes freed.

        The age is part of the DELETE itself: a publish that stores the same bytes meanwhile refreshes
        ``touched_at`` under a row lock, and the delete, waiting on that lock, then finds the row young.
        """
        cutoff = utcnow() - timedelta(seconds=untouched_for)

        def work(session: Session) -> int:
            gone = session.execute(delete(BlobRow).where(BlobRow.sha256 == sha256, BlobRow.touched_at <= cutoff)
                                   .returning(BlobRow.size)).scalar_one_or_none()
            return gone or 0

        return self.db.write(work)

    def age_seconds(self, touched_at: datetime) -> float:
        return (utcnow() - touched_at).total_seconds()

