"""Moving a registry's blobs from its file store into its database (``t2reg blobs migrate --to db``).

Resumable by construction: each blob is copied (read from the files, checked
against its name, inserted) in its own transaction, and a blob already in the
table with the right bytes is skipped, so an interrupted run picks up where it
stopped. The registry switches stores only at the end, in one transaction that
first checks every blob a row needs is in the table; until then everything
keeps reading the files, which are left where they were (remove the folder once
``t2reg verify`` passes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select

from t2reg.errors import ConflictError
from t2reg.registry.blob_store import BlobStore, record_blob_store, referenced_blobs, referenced_blobs_in
from t2reg.registry.blobs_db import DatabaseBlobStore
from t2reg.registry.db import Database
from t2reg.registry.orm import BlobRow
from t2reg.enums import BlobStoreKind

_ROUNDS = 3  # blobs published to the files while a round ran are copied by the next


@dataclass(frozen=True)
class BlobMigration:
    """What a run did: blobs copied now, blobs found already copied (by an earlier, interrupted run)."""

    copied: int
    already_there: int
    source: str

    @property
    def total(self) -> int:
        return self.copied + self.already_there


def migrate_to_database(db: Database, current: BlobStore, on_blob: Callable[[str], None] | None = None
                        ) -> BlobMigration:
    """Copy every blob ``db``'s rows need from its ``current`` store into ``db``, then record the database as
    the store.

    ``on_blob`` is called after each blob is in place (progress). A blob missing from the files or
    corrupt there stops the run with that error, before the switch. A registry already keeping its
    blobs in its database has nothing to copy.
    """
    if current.kind is BlobStoreKind.DATABASE:
        return BlobMigration(0, len(referenced_blobs(db)), current.location)
    target = DatabaseBlobStore(db)
    copied, seen = 0, set()
    for _ in range(_ROUNDS):
        needed = referenced_blobs(db) - seen
        for sha in sorted(needed):
            if target.hash_file(sha) != sha:
                target.put(current.read(sha))  # read() checks the bytes against the name
                copied += 1
            seen.add(sha)
            if on_blob is not None:
                on_blob(sha)
        if _switch(db):
            return BlobMigration(copied, len(seen) - copied, current.location)
    raise ConflictError(f"blobs kept arriving in {current.location} while migrating; stop publishing and run it "
                        "again")


def _switch(db: Database) -> bool:
    """Record the database as the store if every needed blob is in it (one transaction); else False."""
    def work(session) -> bool:
        needed = referenced_blobs_in(session)
        present = set(session.scalars(select(BlobRow.sha256)))
        if needed - present:
            return False
        record_blob_store(session, BlobStoreKind.DATABASE)
        return True

    return db.write(work)
