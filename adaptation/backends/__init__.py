"""Inference backends behind one contract (:class:`Backend`), chosen by name.

``open_backend`` loads a model folder into a named backend; ``open_for`` does
the same for a registered model. Both return a context manager that closes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from t2reg.adaptation.backends.base import (
    Backend,
    Capability,
    Decoder,
    DifferentiableBackend,
    GenerationRequest,
    GenerationUpdate,
    LoglikelihoodRequest,
    Sampling,
    WeightLayout,
)
from t2reg.adaptation.models import weights_dir
from t2reg.names import Names
from t2reg.registry import Registry

BACKENDS: Names[Callable[..., Backend]] = Names("backend")


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    BACKENDS.add(name, factory)


def backend_names() -> list[str]:
    return BACKENDS.names()


def check_backend(name: str, option: str = "backend") -> None:
    """Refuse a backend name nobody registered, naming the option it came from."""
    BACKENDS.check(name, option)


def open_backend(name: str, model_dir: Path, **options) -> Backend:
    """Load ``model_dir`` into the named backend (use it as ``with open_backend(...) as backend``)."""
    return BACKENDS.get(name, "backend")(model_dir, **options)


def open_for(registry: Registry, model: str, name: str = "hf", **options) -> Backend:
    """Load a registered model into the named backend, torch using the cores free now
    (:mod:`~t2reg.adaptation.backends.threads`)."""
    from t2reg.adaptation.backends.threads import use_free_cores

    check_backend(name)
    use_free_cores()
    return open_backend(name, weights_dir(registry, model), **options)


def _hf(model_dir: Path, **options) -> Backend:
    from t2reg.adaptation.backends.hf import HFBackend

    return HFBackend(model_dir, **options)


def _vllm(model_dir: Path, **options) -> Backend:
    from t2reg.adaptation.backends.vllm import VLLMBackend

    return VLLMBackend(model_dir, **options)


register_backend("hf", _hf)
register_backend("vllm", _vllm)

__all__ = ["Backend", "Capability", "Decoder", "DifferentiableBackend", "GenerationRequest", "GenerationUpdate",
           "LoglikelihoodRequest", "Sampling", "WeightLayout", "backend_names", "check_backend", "open_backend",
           "open_for", "register_backend"]
