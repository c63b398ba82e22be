"""The database blob store, on SQLite and PostgreSQL: publish, download, verify, gc, racing publishers."""

import subprocess
import sys

import pytest
from sqlalchemy import func, select, update

from t2reg.errors import ConflictError
from t2reg.registry import Registry
from t2reg.registry.blobs_db import DatabaseBlobStore
from t2reg.registry.orm import BlobRow, VersionRow
from t2reg.settings import load_settings
from t2reg.enums import BlobStoreKind
from tests.helpers.experts import make_expert, write
from tests.helpers.paths import HELPERS, ROOT

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def expert_file(db_registry, tmp_path):
    shapes = db_registry.model_shapes("smollm2-135m")

    def build(seed=0):
        return write(make_expert(shapes, SMOL, seed=seed), tmp_path / f"e-{seed}.safetensors")

    return build


def _blob_rows(registry) -> int:
    with registry.db.session() as session:
        return session.scalar(select(func.count()).select_from(BlobRow))


def test_publish_and_download_byte_identical_with_no_blob_folder(db_registry, expert_file, tmp_path):
    assert db_registry.blobs.kind is BlobStoreKind.DATABASE
    source = expert_file()
    version = db_registry.publish(source, metrics=["gsm8k:accuracy=0.5"])
    out = db_registry.download(version.ref, tmp_path / "copy.safetensors")
    assert out.read_bytes() == source.read_bytes()
    assert not (tmp_path / "home" / "blobs").exists()
    assert _blob_rows(db_registry) == 1 and db_registry.verify().ok


def test_another_machine_reaching_only_the_database_downloads(db_registry, expert_file, tmp_path):
    version = db_registry.publish(expert_file())
    elsewhere = load_settings(home=tmp_path / "other-machine", database_url=db_registry.settings.database_url)
    with Registry(elsewhere) as other:  # no blob root: the registry's recorded store is used
        assert isinstance(other.blobs, DatabaseBlobStore)
        out = other.download(version.ref, tmp_path / "there.safetensors")
    assert out.read_bytes() == expert_file().read_bytes()


def test_verify_catches_a_corrupted_blob_and_republishing_repairs_it(db_registry, expert_file):
    version = db_registry.publish(expert_file())
    with db_registry.db.session(write=True) as session:
        session.execute(update(BlobRow).where(BlobRow.sha256 == version.sha256).values(data=b"garbage"))
    report = db_registry.verify()
    assert not report.ok and report.corrupt == (version.sha256,)
    db_registry.publish(expert_file())
    assert db_registry.verify().ok


def test_gc_removes_only_unreferenced_blobs_past_the_grace(db_registry, expert_file):
    kept = db_registry.publish(expert_file())
    orphan, created = db_registry.blobs.put(b"nobody points here")
    assert created and db_registry.blobs.exists(orphan)
    assert db_registry.gc(grace_seconds=3600).removed == ()  # young: a publish may be about to use it
    report = db_registry.gc(grace_seconds=0)
    assert report.removed == (orphan,) and report.bytes_freed == len(b"nobody points here")
    assert not db_registry.blobs.exists(orphan) and db_registry.blobs.exists(kept.sha256)
    assert db_registry.verify().ok


def test_a_blob_stored_in_a_failed_transaction_is_not_there(db_registry):
    # publishing puts the blob in the transaction that inserts the version row: a failure takes both
    def work(session):
        sha = db_registry.blobs.put_in(session, b"would-be expert")
        raise ConflictError(f"the row for {sha} failed")

    with pytest.raises(ConflictError, match="the row for"):
        db_registry.db.write(work)
    assert _blob_rows(db_registry) == 0


def test_concurrent_publishers_of_the_same_bytes_store_them_once(db_registry, expert_file):
    path = expert_file()
    procs = [subprocess.Popen([sys.executable, str(HELPERS / "same_bytes_worker.py"), db_registry.settings.database_url,
                               str(db_registry.settings.home), str(path), "5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(4)]
    refs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        refs += out.split()
    assert sorted(int(r.split(":")[1]) for r in refs) == list(range(1, 21))
    with db_registry.db.session() as session:
        shas = set(session.scalars(select(VersionRow.blob_sha256)))
    assert _blob_rows(db_registry) == 1 and len(shas) == 1
    assert db_registry.verify().ok


def test_asking_for_db_blobs_on_a_file_registry_points_at_migrate(registry, tmp_path):
    settings = load_settings(home=tmp_path / "x", database_url=registry.settings.database_url, blob_root="db")
    with pytest.raises(ConflictError, match="move them into the database"):
        Registry(settings)


def test_removal_checks_the_age_where_it_deletes(db_registry):
    sha, _ = db_registry.blobs.put(b"x")
    assert db_registry.blobs.remove(sha, untouched_for=3600) == 0 and db_registry.blobs.exists(sha)
    assert db_registry.blobs.remove(sha) == 1 and not db_registry.blobs.exists(sha)


def test_per_question_results_are_stored_with_their_score(db_registry, expert_file):
    from t2reg.question_results import dumps_results

    results = dumps_results([{"id": "q", "prediction": "1", "answer": "1", "correct": True, "logprob": -0.5}])
    version = db_registry.publish(expert_file())
    recorded = db_registry.record(version.ref, ["gsm8k:accuracy=1.0"], results=results)
    sha = recorded.evaluations[-1].results_sha256
    assert db_registry.evaluation_results(sha)[0]["id"] == "q" and _blob_rows(db_registry) == 2


def test_init_blobs_db_switches_an_empty_file_registry_and_refuses_one_holding_versions(registry, tmp_path):
    url = registry.settings.database_url
    shapes = registry.model_shapes("smollm2-135m")
    asked = Registry(load_settings(home=tmp_path / "x", database_url=url, blob_root="db"), check_schema=False)
    try:
        registry.publish(write(make_expert(shapes, SMOL), tmp_path / "e.safetensors"))
        with pytest.raises(ConflictError, match="move them into the database"):
            asked.init()
    finally:
        asked.close()
    with Registry(load_settings(home=tmp_path / "y", blob_root="db"), create=True) as fresh:
        assert fresh.blobs.kind is BlobStoreKind.DATABASE
        with Registry(load_settings(home=tmp_path / "y")) as again:  # the recorded choice, not the default folder
            assert again.blobs.kind is BlobStoreKind.DATABASE
