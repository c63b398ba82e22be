"""A separate process that publishes distinct experts under one name.

Usage: publish_worker.py DATABASE_URL BLOB_ROOT WORKER_ID COUNT (COUNT 0: forever)
Prints each published reference on its own line, flushed, as it commits.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from t2reg.expert_file import Expert, ExpertMeta
from t2reg.registry import Registry
from t2reg.settings import load_settings

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def main() -> None:
    url, blob_root, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    registry = Registry(load_settings(home=blob_root, database_url=url, blob_root=blob_root))
    shapes = registry.model_shapes("smollm2-135m")
    names = [n for n in shapes if ".mlp." in n][:6]
    for i in itertools.count() if count == 0 else range(count):
        vectors = {n: np.full(min(shapes[n]), worker * 100_000 + i, np.float32) for n in names}
        expert = Expert(vectors, ExpertMeta(base_model=MODEL, task="gsm8k"))
        version = registry.publish(expert, name="contended", metrics=[f"gsm8k:accuracy={i % 1000 / 1000}"])
        print(version.ref, flush=True)


if __name__ == "__main__":
    main()
