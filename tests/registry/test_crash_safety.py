"""Publishers killed with SIGKILL at random points leave a consistent registry."""

import random
import signal
import time

import pytest
from sqlalchemy import select

from t2reg.registry.orm import VersionRow
from tests.registry.test_concurrency import start_worker


@pytest.mark.slow
def test_sigkilled_publishes_leave_a_registry_that_verifies(registry):
    rng = random.Random(1234)
    committed = []
    for round_ in range(12):
        proc = start_worker(registry, round_, 0)
        time.sleep(rng.uniform(0.5, 2.0))  # start-up plus a random number of publishes
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        committed += out.split()
    assert committed, "no publish ever committed; the kill points were all during start-up"
    report = registry.verify()
    assert report.ok, report
    with registry.db.session() as s:
        rows = list(s.execute(select(VersionRow.version, VersionRow.blob_sha256)))
        refs = {f"contended:{v}" for v, _ in rows}
    assert all(registry.blobs.exists(sha) for _, sha in rows)
    assert set(committed) <= refs  # every publish that reported success is there
    registry.gc(grace_seconds=0)  # leftovers of killed publishes go; nothing referenced does
    assert registry.verify().ok and registry.verify().unreferenced == ()
    assert list(registry.blobs.iter_temp_files()) == []
