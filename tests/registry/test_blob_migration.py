"""`blobs migrate --to db`: every needed blob copied and checked, resumable after an interruption."""

import shutil

import pytest
from sqlalchemy import func, select

from t2reg.errors import IntegrityCheckError
from t2reg.question_results import dumps_results
from t2reg.registry import Registry
from t2reg.registry.blobs import FileBlobStore
from t2reg.registry.blobs_db import DatabaseBlobStore
from t2reg.registry.orm import BlobRow
from t2reg.settings import load_settings
from tests.helpers.experts import make_expert, write

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
RESULTS = dumps_results([{"id": "q1", "prediction": "A", "answer": "A", "correct": True, "logprob": -0.1}])


class Interrupted(Exception):
    """Stands in for the process being stopped half way."""


@pytest.fixture
def published(registry, tmp_path):
    shapes = registry.model_shapes("smollm2-135m")
    files = [write(make_expert(shapes, SMOL, seed=i), tmp_path / f"e{i}.safetensors") for i in range(3)]
    versions = [registry.publish(f, name=f"e{i}") for i, f in enumerate(files)]
    registry.record(versions[0].ref, ["gsm8k:accuracy=1.0"], results=RESULTS)
    return dict(zip((v.ref for v in versions), files))


def _rows(registry) -> int:
    with registry.db.session() as session:
        return session.scalar(select(func.count()).select_from(BlobRow))


def test_an_interrupted_migration_resumes_and_switches_only_at_the_end(registry, published, tmp_path):
    done = []

    def stop_after_two(sha):
        done.append(sha)
        if len(done) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        registry.migrate_blobs_to_database(on_blob=stop_after_two)
    assert _rows(registry) == 2
    settings = load_settings(home=tmp_path / "home", database_url=registry.settings.database_url,
                             blob_root=registry.settings.blob_root)
    with Registry(settings) as reopened:  # not switched yet: still the files
        assert isinstance(reopened.blobs, FileBlobStore)
        report = reopened.migrate_blobs_to_database()
    assert (report.copied, report.already_there) == (2, 2)  # 3 experts and 1 results blob
    shutil.rmtree(registry.settings.blob_root)  # the files are no longer read
    elsewhere = load_settings(home=tmp_path / "elsewhere", database_url=registry.settings.database_url)
    with Registry(elsewhere) as other:
        assert isinstance(other.blobs, DatabaseBlobStore) and other.verify().ok
        for ref, source in published.items():
            assert other.download(ref, tmp_path / "out.safetensors").read_bytes() == source.read_bytes()
        sha = other.get(next(iter(published))).evaluations[-1].results_sha256
        assert other.evaluation_results(sha)[0]["id"] == "q1"
        assert other.migrate_blobs_to_database().copied == 0  # again: nothing to do


def test_a_corrupt_file_stops_the_migration_before_the_switch(registry, published, tmp_path):
    victim = registry.get(next(iter(published))).sha256
    registry.blobs.path(victim).write_bytes(b"garbage")
    with pytest.raises(IntegrityCheckError, match=victim):
        registry.migrate_blobs_to_database()
    with Registry(registry.settings) as reopened:
        assert isinstance(reopened.blobs, FileBlobStore)
