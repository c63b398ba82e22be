"""A small world for the Ray replica tests: a tiny Llama with a real tokenizer, decomposed, and three
experts on it, in a SQLite registry; plus the local Ray runtime the tests share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from t2reg.expert_file import Expert, ExpertMeta, write_expert
from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

EXPERTS = ("e1", "e2", "e3")


def require_ray():
    """The ray module; missing, it is a skip here and a failure on CI (make test installs t2reg[ray])."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed on CI (make venv installs t2reg[ray])")
        pytest.skip("ray is not installed")
    return ray


def build_world(root: Path) -> Registry:
    from t2reg.adaptation.models import decompose_model

    save_model_with_tokenizer(root / "tiny", "LlamaForCausalLM", seed=0)
    registry = Registry(load_settings(home=root / "home"), create=True)
    registry.add_model(str(root / "tiny"), aliases=["tiny"])
    spectra = decompose_model(registry, "tiny")
    model = registry.get_model("tiny")
    for seed, name in enumerate(EXPERTS, start=1):
        rng = np.random.default_rng(seed)
        vectors = {n: rng.uniform(0.6, 1.4, spectra[n].S.shape[0]).astype(np.float32) for n in spectra.names()}
        meta = ExpertMeta(base_model=model.name, architecture=model.architecture, task="gsm8k")
        registry.publish(write_expert(Expert(vectors, meta), root / f"{name}.safetensors"), name=name)
    return registry
