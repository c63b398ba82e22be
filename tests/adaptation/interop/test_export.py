"""Export: the base model with an expert merged in, loadable without t2reg."""

import pytest
import torch

from t2reg.adaptation import ExpertPatch, decompose_model, load_model
from t2reg.adaptation.interop.export import export_merged
from t2reg.errors import InvalidInputError
from tests.helpers.experts import make_expert, write
from tests.helpers.tiny_models import register_tiny

IDS = torch.tensor([[3, 1, 4, 1, 5, 9]])

@pytest.fixture
def tiny(sqlite_registry, tmp_path):
    return register_tiny(sqlite_registry, tmp_path)


def test_export_reloads_with_from_pretrained_and_matches_the_patched_model(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    spectra = decompose_model(tiny, "tiny")
    v = tiny.publish(write(make_expert(tiny.model_shapes("tiny"), "tiny-llama", seed=4), tmp_path / "e.safetensors"))
    out = export_merged(tiny, v.ref, tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    model = load_model("tiny", tiny)
    with torch.no_grad(), ExpertPatch(model, spectra, tiny.read_expert(v.ref)):
        assert torch.allclose(reloaded(IDS).logits, model(IDS).logits, atol=1e-5)
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        export_merged(tiny, v.ref, out)
