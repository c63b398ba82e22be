"""The replica settings a job spec carries, and their checks (light: no Ray, no torch).

``replicas`` is the number of model replicas (Ray actors) one job spreads over; ``None`` runs in this
process as before. ``ray_address`` names an existing cluster (``ray://head:10001`` or ``head:6379``);
without it a local Ray runtime is started. ``threads`` is the CPU threads each replica uses when it has
no GPU (a GPU replica takes one device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2reg.errors import InvalidInputError

REPLICA_FIELDS = ("replicas", "ray_address", "threads")
DEFAULT_THREADS = 1
# Backends a replica can host. vLLM runs its own worker processes (and its own Ray, on GPUs); hosting it
# inside a Ray actor is not something we have run, so it is refused rather than left to fail oddly.
REPLICA_BACKENDS = ("hf",)


@dataclass(frozen=True)
class ReplicaSettings:
    """How one job's compute is spread: ``replicas`` actors of ``threads`` CPU threads (or one GPU) each."""

    replicas: int
    address: str | None = None
    threads: int = DEFAULT_THREADS

    @property
    def cpus(self) -> int:
        return self.replicas * self.threads


def replica_settings(spec: Any) -> ReplicaSettings | None:
    """The spec's replica settings, or None when it runs in this process."""
    if not getattr(spec, "replicas", None):
        return None
    return ReplicaSettings(spec.replicas, spec.ray_address, spec.threads or DEFAULT_THREADS)


def check_replica_fields(spec: Any) -> None:
    """Refuse replica settings that make no sense, naming the options (called from the specs' validate)."""
    replicas, address, threads = (getattr(spec, name) for name in REPLICA_FIELDS)
    if replicas is None:
        given = [name for name in ("ray_address", "threads") if getattr(spec, name) is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise InvalidInputError(f"{' and '.join('{' + n + '}' for n in given)} only {verb} with {{replicas}}",
                                    options=[*given, "replicas"])
        return
    if replicas < 1:
        raise InvalidInputError("{replicas} must be at least 1", options=["replicas"])
    if threads is not None and threads < 1:
        raise InvalidInputError("{threads} must be at least 1", options=["threads"])
    if address is not None and not address.strip():
        raise InvalidInputError("{ray_address} is empty", options=["ray_address"])
    backend = getattr(spec, "backend", "hf")
    if backend not in REPLICA_BACKENDS:
        raise InvalidInputError(f"{{replicas}} host the {' or '.join(REPLICA_BACKENDS)} backend, not {backend!r}; "
                                "drop {replicas} to run it in this process", options=["replicas"])


def check_cluster(spec: Any) -> None:
    """A spec's named Ray cluster must take connections (called from the specs' check, at submission)."""
    if getattr(spec, "replicas", None) and getattr(spec, "ray_address", None):
        from t2reg.adaptation.distributed.cluster import check_reachable

        check_reachable(spec.ray_address)
