"""Derived models: a registered model's weights plus seeded noise, the positive control for transfer.

A model that shares its source's architecture and whose adapted matrices are
the source's plus Gaussian noise of a chosen relative (Frobenius) size has
nearly the same spectra: an expert transferred to it in canonical order should
keep most of its effect, and a shuffled one lose it. If that fails at 2 %
noise, the transfer code has a bug; how the effect decays with noise says how
much of it rides on the singular vectors staying put.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from t2reg.adaptation.models.files import safetensors_files
from t2reg.adaptation.models.registered import weights_dir
from t2reg.architectures import matrix_specs
from t2reg.errors import InvalidInputError
from t2reg.files import landing_dir
from t2reg.registry import ModelInfo, Registry
from t2reg.registry.model_sources import from_directory
from t2reg.registry.validation import validate_name

NOT_WEIGHTS = (".safetensors", ".index.json")


def add_noisy_model(registry: Registry, source: str, name: str, noise: float, seed: int = 0,
                    modules: str = "mlp") -> ModelInfo:
    """Register ``name``: ``source``'s weights, each adapted matrix W replaced by
    W + noise * ||W||_F / sqrt(W.numel) * N(0, 1) (seeded per matrix), so ||dW||_F / ||W||_F is about ``noise``.
    The rest of the model (embeddings, norms, the tokenizer) is copied unchanged."""
    validate_name(name, "model name")
    if not 0 < noise < 1:
        raise InvalidInputError("{noise} must lie in (0, 1): a relative Frobenius size", options=["noise"])
    source_dir = weights_dir(registry, source)
    out = registry.settings.home / "models" / name
    names = {m.name for m in matrix_specs(registry.model_config(source), modules)}
    with landing_dir(out) as staging:
        for item in source_dir.iterdir():
            if item.is_file() and not item.name.endswith(NOT_WEIGHTS):
                shutil.copy2(item, staging / item.name)
        for file in sorted(set(safetensors_files(source_dir).values())):
            tensors = load_file(str(file))
            for key in sorted(tensors):
                if key in names:
                    tensors[key] = _noisy(tensors[key], noise, f"{seed}:{key}")
            save_file(tensors, str(staging / file.name), metadata={"format": "pt"})
        index = source_dir / "model.safetensors.index.json"
        if index.is_file():
            shutil.copy2(index, staging / index.name)
        (staging / "t2reg-derived.json").write_text(json.dumps({"source": registry.get_model(source).name,
                                                                "noise": noise, "seed": seed, "modules": modules}))
    return registry.add_model_spec(from_directory(Path(out), name))


def _noisy(weight: torch.Tensor, noise: float, key: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(int.from_bytes(key.encode(), "little") % (2**63))
    w = weight.float()
    scale = noise * torch.linalg.matrix_norm(w) / w.numel() ** 0.5
    return (w + scale * torch.randn(w.shape, generator=generator)).to(weight.dtype)
