"""The file blob store (a :class:`~t2reg.registry.blob_store.BlobStore`): ``<root>/sha256/<2 hex>/<64 hex>``.

A blob lands like every file t2reg writes (:mod:`t2reg.files`), its temp file
under ``<root>/tmp``, so a reader never sees a partial blob and the same bytes are
stored once. Rows point to blobs; blobs never point to rows, so a crash leaves
at worst an unreferenced blob or temp file, which ``gc`` removes. A file cannot
join a database transaction, so :meth:`FileBlobStore.write` lands the blobs
first and the rows after, and takes back the blobs it created if the rows fail.

Several registries may share one store (``T2REG_BLOB_ROOT``). Each registry that
opens the store leaves a marker, ``<root>/registries/<key>.json`` naming its
database, so ``gc`` in one of them knows whose references it must also honour.
Anything else found under ``sha256/`` (a stray file, a name that is not a
sha256) is reported, never read as a blob and never removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from sqlalchemy.orm import Session

from t2reg.errors import IntegrityCheckError, NotFoundError, StorageError
from t2reg.files import land_bytes, land_text
from t2reg.registry.blob_store import referenced_blobs, sha256_of
from t2reg.registry.db import Database
from t2reg.enums import BlobStoreKind

_CHUNK = 1 << 20
_SHA = re.compile(r"[0-9a-f]{64}")  # fullmatch only: "$" would take a name ending in a newline
_SHARD = re.compile(r"[0-9a-f]{2}")
MARKERS = "registries"
T = TypeVar("T")


class FileBlobStore:
    """Blobs on a local (or shared) file system, named by their sha256."""

    kind = BlobStoreKind.FILES

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "sha256"
        self._tmp = self.root / "tmp"

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, sha256: str) -> Path:
        return self._objects / sha256[:2] / sha256

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, db: Database, blobs: Iterable[bytes], work: Callable[[Session], T]) -> T:
        """Land ``blobs``, then run ``work`` in one write transaction; if that fails, remove the blobs this
        call created (unless something else has used them since)."""
        blobs = list(blobs)
        created: list[tuple[str, int]] = []  # each new blob and its mtime as this call left it
        try:
            for data in blobs:
                sha, new = self.put(data)
                if new:
                    created.append((sha, self.path(sha).stat().st_mtime_ns))
            done = db.write(work)
        except BaseException:
            for sha, stamp in created:
                self._discard(db, sha, stamp)
            raise
        for data in blobs:
            if not self.exists(sha256_of(data)):  # a concurrent failed write of the same bytes took it back
                self.put(data)
        return done

    def _discard(self, db: Database, sha256: str, stamp: int) -> None:
        """Undo a blob a failed write landed: only when nobody touched it since (its mtime is still ``stamp``)
        and no row uses it (the same bytes may have been published meanwhile)."""
        try:
            if self.path(sha256).stat().st_mtime_ns != stamp:
                return
        except FileNotFoundError:
            return
        if sha256 not in referenced_blobs(db):
            self.remove(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; return its sha256 and whether this call wrote the blob.

        A blob already there is kept only if its bytes still hash to its name: a
        corrupt one is rewritten, so republishing the bytes repairs it.
        """
        sha = sha256_of(data)
        final = self.path(sha)
        if final.is_file() and self.hash_file(sha) == sha:
            os.utime(final)  # a fresh mtime keeps a concurrent gc's grace period from taking it
            return sha, False
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            land_bytes(final, data, temp_dir=self._tmp)  # temp files live in tmp/, where gc finds strays
        except OSError as exc:
            raise StorageError(f"cannot store blob {sha} in {self.root}: {exc.strerror or exc}") from None
        return sha, True

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its name."""
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {sha256} is missing from {self.root}") from None
        if sha256_of(data) != sha256:
            raise IntegrityCheckError(f"blob {sha256} is corrupt: its bytes hash to something else")
        return data

    def copy_to(self, sha256: str, out: Path) -> Path:
        """Copy a blob to ``out`` atomically, refusing to write a corrupt copy."""
        return land_bytes(out, self.read(sha256))

    def hash_file(self, sha256: str) -> str | None:
        """The actual sha256 of the stored bytes, or None when the blob is missing."""
        digest = hashlib.sha256()
        try:
            with self.path(sha256).open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        """Every well-formed blob: a file named by a sha256 in the shard its first two digits name."""
        for sha, path in self._iter_entries():
            if sha is not None:
                yield sha, path

    def iter_strays(self) -> Iterator[Path]:
        """Whatever else lies under ``sha256/``: never a blob, so never read as one nor removed by gc."""
        for sha, path in self._iter_entries():
            if sha is None:
                yield path

    def _iter_entries(self) -> Iterator[tuple[str | None, Path]]:
        if not self._objects.is_dir():
            return
        for shard in sorted(self._objects.iterdir()):
            if not (_SHARD.fullmatch(shard.name) and shard.is_dir() and not shard.is_symlink()):
                yield None, shard
                continue
            for path in sorted(shard.iterdir()):
                good = _SHA.fullmatch(path.name) and path.name[:2] == shard.name
                yield (path.name if good and path.is_file() and not path.is_symlink() else None), path

    def iter_temp_files(self) -> Iterator[Path]:
        if self._tmp.is_dir():
            yield from sorted(p for p in self._tmp.iterdir() if p.is_file() and not p.is_symlink())

    # -- which registries use this store ----------------------------------------

    def register_user(self, database: str) -> None:
        """Leave this store's marker for the registry at ``database`` (an identity URL, no password).

        Best effort: a store this user cannot write is read-only for it anyway.
        """
        marker = self.root / MARKERS / f"{_key(database)}.json"
        if marker.is_file():
            return
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            land_text(marker, json.dumps({"database": database,
                                          "registered_at": datetime.now(timezone.utc).isoformat()}) + "\n")
        except OSError:
            pass

    def users(self) -> dict[Path, str | None]:
        """Marker file -> the database URL it names (None for a marker that cannot be read)."""
        folder = self.root / MARKERS
        found: dict[Path, str | None] = {}
        if not folder.is_dir():
            return found
        for marker in sorted(folder.glob("*.json")):
            try:
                database = json.loads(marker.read_text()).get("database")
            except (OSError, ValueError, AttributeError):
                database = None
            found[marker] = database if isinstance(database, str) else None
        return found

    def remove(self, sha256: str, untouched_for: float = 0.0) -> int:
        """Delete a blob not touched in the last ``untouched_for`` seconds; return the bytes freed (0 if it was
        already gone, or was touched: a publish storing the same bytes refreshes its mtime)."""
        path = self.path(sha256)
        try:
            info = path.stat()
            if time.time() - info.st_mtime < untouched_for:
                return 0
            size = info.st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"cannot remove blob {sha256} from {self.root}: {exc.strerror or exc}") from None
        return size

    def age_seconds(self, path: Path) -> float:
        try:
            return time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0


def _key(database: str) -> str:
    return hashlib.sha256(database.encode("utf-8")).hexdigest()[:24]
