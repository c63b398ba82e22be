"""A separate worker process on a shared queue, running a cheap "probe" job kind.

Usage: python -m tests.helpers.job_worker DATABASE_URL BLOB_ROOT NAME GO_FILE (from the repository root)
Prints "ready", waits until GO_FILE exists (so all workers start claiming together),
The real claim/heartbeat/checkpoint machinery runs; only the work is a stand-in
(three short steps, each checkpointed with the worker's name), then prints the
ids of the jobs it ran, one per line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from t2reg.adaptation.jobs import work
from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.helpers.jobs import register_test_kind


def probe(context):
    state = context.state or {"step": 0}
    for step in range(state["step"], 3):
        time.sleep(0.03)
        context.checkpoint({"step": step + 1}, {"iteration": step + 1, "worker": context.claim.worker})
    return {"worker": context.claim.worker}


def main() -> None:
    url, blob_root, name, go = sys.argv[1:5]
    registry = Registry(load_settings(home=blob_root, database_url=url, blob_root=blob_root))
    register_test_kind("probe", probe)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.01)
    work(registry, ["probe"], once=True, worker=name, on_job=lambda job: print(job.id, flush=True))


if __name__ == "__main__":
    main()
