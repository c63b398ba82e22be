"""Connecting to Ray and deciding what each replica reserves on it.

Without an address, a local Ray runtime is started in this process (no dashboard, a small object store,
as many CPUs as the machine has or the replicas need, so their actors always fit) and kept for the
process's life, so a worker that runs many jobs starts it once. With an address, the cluster must be
reachable: a plain TCP connection is tried first, so an address where nothing listens fails at once with
one line, instead of Ray's own minute-long retries.

Ray carries only the compute of one job. Every node must see the registry's model and spectra files at
the paths this process sees (as workers that share a registry already must), and have t2reg installed.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from t2reg.adaptation.distributed.settings import ReplicaSettings
from t2reg.addresses import is_loopback
from t2reg.errors import ClusterError, InvalidInputError

# Experts and alphas are small (an 8B model's expert is 1.6 MB); the store never holds weights.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
CONNECT_TIMEOUT_S = 5.0
# Ray's own progress lines stay out of the job's output; its warnings still show. Replicas' stdout and
# stderr are not forwarded (their errors come back as exceptions).
_QUIET = {"logging_level": logging.WARNING, "log_to_driver": False}


def require_ray() -> Any:
    """The ``ray`` module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise InvalidInputError("{replicas} needs Ray: pip install 't2reg[ray]'", options=["replicas"]) from None
    return ray


def connect(settings: ReplicaSettings) -> None:
    """Make sure this process is connected to Ray: the cluster at ``settings.address``, or a local runtime.

    A process already connected (a library user's own ``ray.init``, a worker's earlier job) keeps its
    connection.
    """
    ray = require_ray()
    if settings.address:
        check_reachable(settings.address)
    if ray.is_initialized():
        return
    try:
        if settings.address:
            if _is_loopback(settings.address):  # a runtime on this machine only: join it from the loopback side
                _single_machine(ray)
            ray.init(address=settings.address, **_QUIET)
        else:
            start_local_runtime(max(os.cpu_count() or 1, settings.cpus))
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {settings.address} ({{ray_address}})" if settings.address else "a local Ray runtime"
        raise ClusterError(f"cannot start or join {where}: {_first_line(exc)}",
                           options=["ray_address"] if settings.address else []) from None


def start_local_runtime(num_cpus: int, object_store_bytes: int = LOCAL_OBJECT_STORE_BYTES) -> str:
    """A Ray runtime on this machine only (every server bound to the loopback address), without a dashboard;
    returns its address, which other processes on this machine can join (``--ray``)."""
    ray = require_ray()
    _single_machine(ray)
    context = ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=object_store_bytes, **_QUIET)
    return context.address_info["address"]


def _single_machine(ray: Any) -> None:
    """Ray binds its servers to the node's address; on one machine it can use the loopback address (what
    it does on macOS and Windows), so nothing on the network reaches the runtime. A process that joins
    such a runtime must do the same, or it looks for it on the network address and waits forever."""
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = False


def _is_loopback(address: str) -> bool:
    host, _ = _host_port(address)
    return host is not None and is_loopback(host)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an address whose host:port takes no TCP connection (``auto`` and the like are left to Ray)."""
    host, port = _host_port(address)
    if host is None:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"cannot reach a Ray cluster at {address} ({{ray_address}}): {reason.lower()}",
                           options=["ray_address"]) from None


def _host_port(address: str) -> tuple[str | None, int]:
    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"{{ray_address}} {address!r} has a bad port", options=["ray_address"]) from None
    if not parts.hostname or port is None:
        return None, 0
    return parts.hostname, port


@dataclass(frozen=True)
class Placement:
    """What each replica reserves, and the device its model goes on."""

    num_cpus: int
    num_gpus: int
    device: str


def place(settings: ReplicaSettings, device: str | None = None) -> Placement:
    """One GPU per replica where the cluster has GPUs (unless ``device`` is cpu), else ``threads`` CPUs.

    A request the whole cluster can never meet is refused now, naming what it has; one it can meet
    later (other jobs hold the resources) waits for them, as Ray does.
    """
    ray = require_ray()
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    use_gpus = device != "cpu" and gpus > 0
    if device == "cuda" and not gpus:
        raise InvalidInputError("the Ray cluster has no GPU for {device} cuda", options=["device"])
    if use_gpus and gpus < settings.replicas:
        raise InvalidInputError(f"the Ray cluster has {gpus} GPU(s); {settings.replicas} {{replicas}} need one each",
                                options=["replicas"])
    if cpus < settings.cpus:
        raise InvalidInputError(f"the Ray cluster has {cpus} CPU(s); {settings.replicas} {{replicas}} of "
                                f"{settings.threads} {{threads}} need {settings.cpus}", options=["replicas", "threads"])
    return Placement(settings.threads, 1 if use_gpus else 0, "cuda" if use_gpus else "cpu")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
