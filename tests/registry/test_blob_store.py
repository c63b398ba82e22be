"""The BlobStore contract, one suite run against every store: files and the database, each on SQLite and
PostgreSQL. A new store passes this before the registry may use it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import pytest
from sqlalchemy import select, update

from t2reg.errors import IntegrityCheckError, NotFoundError
from t2reg.registry.blob_store import BlobStore
from t2reg.registry.blobs import FileBlobStore
from t2reg.registry.blobs_db import DatabaseBlobStore
from t2reg.registry.db import Database
from t2reg.registry.orm import BlobRow, RegistrySettingRow
from t2reg.enums import BlobStoreKind

GRACE = 3600.0  # gc's grace period, far longer than any of these tests


@dataclass
class Case:
    store: BlobStore
    db: Database
    corrupt: Callable[[str], None]  # overwrite a stored blob's bytes behind the store's back


class Refused(Exception):
    """The rows' work failing half way."""


@pytest.fixture(params=["files", "database"])
def case(request, backend) -> Case:
    registry = request.getfixturevalue("registry" if request.param == "files" else "db_registry")
    store = registry.blobs
    if request.param == "files":
        assert isinstance(store, FileBlobStore)

        def corrupt(sha: str) -> None:
            store.path(sha).write_bytes(b"garbage")
    else:
        assert isinstance(store, DatabaseBlobStore)

        def corrupt(sha: str) -> None:
            with registry.db.session(write=True) as session:
                session.execute(update(BlobRow).where(BlobRow.sha256 == sha).values(data=b"garbage"))

    return Case(store, registry.db, corrupt)


def _setting(db: Database, key: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(RegistrySettingRow.value).where(RegistrySettingRow.key == key))


def test_each_store_is_a_blob_store(case):
    assert isinstance(case.store, BlobStore)
    assert isinstance(case.store.kind, BlobStoreKind) and case.store.location
    case.store.prepare()  # idempotent: the registry already made it ready
    assert set(case.store.users().values()) <= {case.db.identity}  # its own registry is never "another"


def test_put_is_content_addressed_and_idempotent(case, tmp_path):
    data = b"\x00\x01expert bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert case.store.put(data) == (sha, True)
    assert case.store.put(data) == (sha, False)
    assert case.store.exists(sha) and case.store.read(sha) == data
    assert case.store.hash_file(sha) == sha
    assert case.store.copy_to(sha, tmp_path / "copy.bin").read_bytes() == data
    assert [s for s, _ in case.store.iter_blobs()] == [sha]


def test_a_missing_blob_is_reported_missing(case, tmp_path):
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not case.store.exists(sha) and case.store.hash_file(sha) is None
    with pytest.raises(NotFoundError, match="missing"):
        case.store.read(sha)
    with pytest.raises(NotFoundError):
        case.store.copy_to(sha, tmp_path / "out")
    assert not (tmp_path / "out").exists() and case.store.remove(sha) == 0


def test_a_corrupt_blob_is_caught_and_storing_it_again_repairs_it(case, tmp_path):
    sha, _ = case.store.put(b"good bytes")
    case.corrupt(sha)
    assert case.store.hash_file(sha) not in (None, sha)
    with pytest.raises(IntegrityCheckError, match="corrupt"):
        case.store.read(sha)
    with pytest.raises(IntegrityCheckError):
        case.store.copy_to(sha, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    case.store.put(b"good bytes")
    assert case.store.read(sha) == b"good bytes" and case.store.hash_file(sha) == sha


def test_write_commits_the_blobs_with_the_rows(case):
    blobs = [b"expert file", b"per-question results"]

    def work(session) -> str:
        session.add(RegistrySettingRow(key="probe", value="written"))
        return "done"

    assert case.store.write(case.db, blobs, work) == "done"
    assert _setting(case.db, "probe") == "written"
    assert all(case.store.read(hashlib.sha256(b).hexdigest()) == b for b in blobs)


def test_a_failed_write_leaves_no_rows_and_no_blob_only_it_needed(case):
    kept, _ = case.store.put(b"stored before")
    fresh = hashlib.sha256(b"brought by the failed write").hexdigest()

    def work(session) -> None:
        session.add(RegistrySettingRow(key="probe", value="half"))
        session.flush()
        raise Refused

    with pytest.raises(Refused):
        case.store.write(case.db, [b"stored before", b"brought by the failed write"], work)
    assert _setting(case.db, "probe") is None
    assert not case.store.exists(fresh) and case.store.read(kept) == b"stored before"
    assert [s for s, _ in case.store.iter_blobs()] == [kept]


def test_gc_candidates_carry_their_age_and_removal_honours_it(case):
    sha, _ = case.store.put(b"nobody points here")
    [(listed, handle)] = list(case.store.iter_blobs())
    assert listed == sha and 0 <= case.store.age_seconds(handle) < GRACE
    assert case.store.remove(sha, untouched_for=GRACE) == 0 and case.store.exists(sha)  # young: kept
    assert case.store.remove(sha) == len(b"nobody points here") and not case.store.exists(sha)
    assert case.store.remove(sha) == 0 and list(case.store.iter_blobs()) == []


def test_nothing_half_written_or_stray_after_writes(case):
    case.store.put(b"one")
    case.store.write(case.db, [b"two"], lambda session: None)
    assert list(case.store.iter_temp_files()) == [] and list(case.store.iter_strays()) == []
    assert len(list(case.store.iter_blobs())) == 2
