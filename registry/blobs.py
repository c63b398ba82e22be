"""Content-addressed blob store: ``<root>/sha256/<2 hex>/<64 hex>``.

A blob lands like every file t2reg writes (:mod:`t2reg.files`), its temp file
under ``<root>/tmp``, so a reader never sees a partial blob and the same bytes are
stored once. Rows point to blobs; blobs never point to rows, so a crash leaves
at worst an unreferenced blob or temp file, which ``gc`` removes.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Iterator

from t2reg.errors import IntegrityCheckError, NotFoundError
from t2reg.files import land_bytes

_CHUNK = 1 << 20


class BlobStore:
    """Blobs on a local (or shared) file system, named by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "sha256"
        self._tmp = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        return self._objects / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; return its sha256 and whether this call created the blob."""
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha)
        if final.is_file():
            os.utime(final)  # a fresh mtime keeps a concurrent gc's grace period from taking it
            return sha, False
        final.parent.mkdir(parents=True, exist_ok=True)
        land_bytes(final, data, temp_dir=self._tmp)  # temp files live in tmp/, where gc finds strays
        return sha, True

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its name."""
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {sha256} is missing from {self.root}") from None
        if hashlib.sha256(data).hexdigest() != sha256:
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
        if not self._objects.is_dir():
            return
        for shard in sorted(self._objects.iterdir()):
            for path in sorted(shard.iterdir()):
                yield path.name, path

    def iter_temp_files(self) -> Iterator[Path]:
        if self._tmp.is_dir():
            yield from sorted(self._tmp.iterdir())

    def remove(self, sha256: str) -> int:
        """Delete a blob; return the bytes freed (0 if it was already gone)."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def age_seconds(self, path: Path) -> float:
        try:
            return time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

