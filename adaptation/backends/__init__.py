"""Inference backends behind one interface (:class:`Backend`), chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from t2reg.adaptation.backends.base import Backend
from t2reg.errors import InvalidInputError

_BACKENDS: dict[str, Callable[..., Backend]] = {}


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def open_backend(name: str, model_dir: Path, **options) -> Backend:
    """Load ``model_dir`` into the named backend."""
    try:
        factory = _BACKENDS[name]
    except KeyError:
        raise InvalidInputError(f"unknown backend {name!r}; choose from {', '.join(backend_names())}") from None
    return factory(model_dir, **options)


def _hf(model_dir: Path, **options) -> Backend:
    from t2reg.adaptation.backends.hf import HFBackend

    return HFBackend(model_dir, **options)


def _vllm(model_dir: Path, **options) -> Backend:
    from t2reg.adaptation.backends.vllm import VLLMBackend

    return VLLMBackend(model_dir, **options)


register_backend("hf", _hf)
register_backend("vllm", _vllm)

__all__ = ["Backend", "backend_names", "open_backend", "register_backend"]
