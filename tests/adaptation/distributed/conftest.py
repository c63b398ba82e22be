"""Fixtures of the replica tests: one local Ray runtime for the session (this machine only: loopback,
2 CPUs, an 80 MiB object store, no dashboard) and a tiny world per module."""

from __future__ import annotations

import pytest

from tests.helpers.replicas import build_world, require_ray


@pytest.fixture(scope="session")
def ray_cluster() -> str:
    """The runtime's address (``--ray`` for other processes on this machine)."""
    ray = require_ray()
    from t2reg.adaptation.distributed.cluster import start_local_runtime

    if ray.is_initialized():
        ray.shutdown()
    address = start_local_runtime(num_cpus=2, object_store_bytes=80 * 2**20)
    yield address
    ray.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    registry = build_world(tmp_path_factory.mktemp("replica-world"))
    yield registry
    registry.close()
