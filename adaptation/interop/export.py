"""Export: the base model with an expert merged in, as a plain transformers model."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from t2reg.adaptation.models import load_model, load_spectra, weights_dir
from t2reg.adaptation.patching import ExpertPatch
from t2reg.files import check_folder_destination, landing_dir
from t2reg.registry import Registry


def export_merged(registry: Registry, ref: str, out: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Save the expert's base model with W' in place (safetensors) plus its tokenizer.

    The result loads with ``AutoModelForCausalLM.from_pretrained(out)`` and needs
    no t2reg. Written to a staging folder and renamed, so ``out`` is never half there.
    """
    out = check_folder_destination(out)  # before the model loads
    version = registry.get(ref)
    expert = registry.read_expert(version.ref)
    spectra = load_spectra(version.model, registry)  # first: it is the cheap thing that may be missing
    model = load_model(version.model, registry, dtype=dtype)
    with landing_dir(out) as staging:
        patch = ExpertPatch(model, spectra, expert)
        patch.apply()  # kept applied: this model is thrown away after saving
        model.config.t2reg_expert = version.ref
        model.save_pretrained(staging, safe_serialization=True)
        _copy_tokenizer(weights_dir(registry, version.model), staging)
    return out


def _copy_tokenizer(model_dir: Path, out: Path) -> None:
    # A model registered without a tokenizer (weights only) exports without one too.
    names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
             "chat_template.jinja", "vocab.json", "merges.txt")
    for name in names:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
