import hashlib
import os

import pytest

from t2reg.errors import IntegrityCheckError, NotFoundError
from t2reg.registry.blobs import FileBlobStore


def test_put_is_content_addressed_and_idempotent(tmp_path):
    store = FileBlobStore(tmp_path)
    sha, created = store.put(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest() and created
    assert store.path(sha) == tmp_path / "sha256" / sha[:2] / sha
    assert store.put(b"hello") == (sha, False)
    assert store.read(sha) == b"hello"
    assert list(store.iter_temp_files()) == []


def test_put_refreshes_mtime_of_an_existing_blob(tmp_path):
    store = FileBlobStore(tmp_path)
    sha, _ = store.put(b"x")
    os.utime(store.path(sha), (0, 0))
    store.put(b"x")
    assert store.age_seconds(store.path(sha)) < 60


def test_read_refuses_missing_and_corrupt(tmp_path):
    store = FileBlobStore(tmp_path)
    sha, _ = store.put(b"data")
    store.path(sha).write_bytes(b"tampered")
    with pytest.raises(IntegrityCheckError, match="corrupt"):
        store.read(sha)
    with pytest.raises(IntegrityCheckError):
        store.copy_to(sha, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    store.path(sha).unlink()
    with pytest.raises(NotFoundError, match="missing"):
        store.read(sha)
    assert store.hash_file(sha) is None


def test_copy_to_writes_the_exact_bytes(tmp_path):
    store = FileBlobStore(tmp_path / "store")
    sha, _ = store.put(b"\x00\x01payload")
    out = store.copy_to(sha, tmp_path / "copy.bin")
    assert out.read_bytes() == b"\x00\x01payload"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
