"""Models and their spectra by registered name: GGUF registration, loading, decomposition."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch

from t2reg.architectures import matrix_specs
from t2reg.errors import NotFoundError, Remedy
from t2reg.registry import ModelInfo, Registry
from t2reg.registry.model_sources import with_weights
from t2reg.spectra import Spectra, decompose
from t2reg.adaptation.models.files import convert_gguf, load_tokenizer, matrix_loader
from t2reg.adaptation.models.files import load_model as load_model_dir

Progress = Callable[[Iterable], Iterable]


def add_gguf_model(registry: Registry, source: str, gguf_file: Path, aliases: tuple[str, ...] = ()) -> ModelInfo:
    """Convert a GGUF file once into ``<home>/models/`` and register it.

    ``source`` names the model: a built-in alias (``smollm2-135m``) keeps the
    built-in's name and gains weights; anything else becomes the model's name.
    """
    out_dir = registry.models_dir(source)  # validated name, checked to lie inside <home>/models
    if not (out_dir / "model.safetensors").is_file() and not (out_dir / "model.safetensors.index.json").is_file():
        convert_gguf(gguf_file, out_dir)
    return registry.add_model_spec(with_weights(source, out_dir), aliases)


def weights_dir(registry: Registry, ref: str) -> Path:
    info = registry.get_model(ref)
    if not info.location:
        raise NotFoundError(f"model {ref!r} has no weights registered (it is a shape table)",
                            remedy=Remedy("add them from a GGUF file (or a model folder)", ("model", "add"), (ref,),
                                          (("gguf", "FILE"),)))
    return Path(info.location)


def load_model(ref: str, registry: Registry | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """The transformers model behind a registered name or alias."""
    registry = registry or Registry.open()
    return load_model_dir(weights_dir(registry, ref), dtype=dtype, device=device)


def load_spectra(ref: str, registry: Registry | None = None) -> Spectra:
    registry = registry or Registry.open()
    return Spectra.load(registry.spectra_dir(ref))


def decompose_model(
    registry: Registry,
    ref: str,
    modules: str = "mlp",
    device: str | None = None,
    progress: Progress | None = None,
) -> Spectra:
    """Compute (or finish) the model's spectra for a module group; returns them loaded."""
    info = registry.get_model(ref)
    groups = ("mlp", "attn") if modules == "all" else (modules,)
    root = registry.spectra_dir(ref)
    for group in groups:
        decompose(
            matrix_specs(registry.model_config(ref), group),
            matrix_loader(weights_dir(registry, ref)),
            root,
            model=info.name,
            revision=info.revision,
            group=group,
            device=device,
            progress=progress,
        )
    spectra = Spectra.load(root)
    registry.set_spectra_fingerprint(ref, spectra.fingerprint)
    return spectra


def tokenizer_for(registry: Registry, ref: str):
    return load_tokenizer(weights_dir(registry, ref))
