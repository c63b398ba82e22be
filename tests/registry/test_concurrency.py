"""Many processes publishing under one name: distinct numbers, none lost, blobs intact."""

import subprocess
import sys

import pytest
from sqlalchemy import select

from t2reg.registry.orm import ExpertRow, VersionRow
from tests.helpers.paths import HELPERS, ROOT

WORKER = HELPERS / "publish_worker.py"
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
