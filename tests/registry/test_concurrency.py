"""Many processes on one registry: publishers under one name get distinct numbers and lose nothing; processes
that make one new registry at the same moment all open it."""

import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import select

from t2reg.registry import schema
from t2reg.registry.db import Database
from t2reg.registry.orm import ExpertRow, VersionRow
from tests.helpers.paths import HELPERS, ROOT

WORKER = HELPERS / "publish_worker.py"
OPENER = HELPERS / "open_worker.py"
PROCESSES, EACH = 8, 50


def start_worker(registry, worker: int, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), registry.settings.database_url, str(registry.blobs.root), str(worker), str(count)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )


@pytest.mark.slow
def test_concurrent_publishers_get_distinct_numbers_and_lose_nothing(registry):
    workers = [start_worker(registry, w, EACH) for w in range(PROCESSES)]
    refs = []
    for proc in workers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        refs += out.split()
    assert len(refs) == PROCESSES * EACH == len(set(refs))
    with registry.db.session() as s:
        numbers = sorted(s.scalars(select(VersionRow.version).join(ExpertRow).where(ExpertRow.name == "contended")))
    assert numbers == list(range(1, PROCESSES * EACH + 1))
    assert sorted(int(r.split(":")[1]) for r in refs) == numbers
    report = registry.verify()
    assert report.ok and report.checked == PROCESSES * EACH and report.unreferenced == ()


@pytest.fixture
def empty_database(backend, tmp_path, request) -> str:
    """The URL of a database no registry has been made in yet."""
    if backend == "postgres":
        return request.getfixturevalue("postgres").create_database(f"e_{uuid.uuid4().hex[:12]}")
    return f"sqlite:///{tmp_path / 'home' / 'registry.db'}"


def test_processes_that_make_one_new_registry_at_once_all_open_it(empty_database, tmp_path):
    # Each worker imports first and then waits for the same instant, so their migrations overlap: the
    # schema must be made once, by whichever comes first, and the others must wait for it, not fail.
    start_at = time.time() + 8
    workers = [subprocess.Popen([sys.executable, str(OPENER), empty_database, str(tmp_path / "home"), str(start_at)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
               for _ in range(6)]
    outputs = []
    for proc in workers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    assert outputs[0] and all(names == outputs[0] for names in outputs)
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in outputs[0]  # the built-in models, registered once
    db = Database(empty_database)
    try:
        assert schema.check_schema(db) == "ok"
    finally:
        db.dispose()
