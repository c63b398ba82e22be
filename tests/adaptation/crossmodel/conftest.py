"""Two tiny real models of different families and tokenizers in one registry, with spectra and an expert."""

import numpy as np
import pytest

from t2reg.adaptation.models import decompose_model
from t2reg.expert_file import read_expert
from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.helpers.data import require_data
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture(scope="module")
def two_families(tmp_path_factory):
    """``tiny`` (Llama) and ``other`` (Gemma 3, another tokenizer); ``arc-easy-tiny:1`` a random expert on tiny."""
    require_data()
    tmp = tmp_path_factory.mktemp("crossmodel")
    registry = Registry(load_settings(home=tmp / "home"), create=True)
    save_model_with_tokenizer(tmp / "tiny", "LlamaForCausalLM", seed=0, initializer_range=0.3)
    save_model_with_tokenizer(tmp / "other", "Gemma3ForCausalLM", seed=1, initializer_range=0.3, vocab_size=300)
    registry.add_model(str(tmp / "tiny"), aliases=["tiny"])
    registry.add_model(str(tmp / "other"), aliases=["other"])
    for model in ("tiny", "other"):
        decompose_model(registry, model)
    registry.new_expert_file("tiny", tmp / "e.safetensors", task="arc-easy", noise=0.3, seed=1)
    registry.publish(read_expert(tmp / "e.safetensors"), model="tiny", task="arc-easy")
    yield registry
    registry.close()


def effective(registry, ref: str) -> dict[str, np.ndarray]:
    from t2reg.adaptation.crossmodel.publishing import effective_z
    from t2reg.adaptation.models import load_spectra

    version = registry.get(ref)
    return effective_z(registry.read_expert(ref), load_spectra(version.model, registry))
