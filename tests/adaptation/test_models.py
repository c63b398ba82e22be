"""Models through the registry: decompose, load, import reference experts, export merged."""

import numpy as np
import pytest
import torch

from t2reg.adaptation import ExpertPatch, decompose_model, load_model, load_spectra
from t2reg.adaptation.export import export_merged
from t2reg.adaptation.importer import import_reference
from t2reg.errors import ConflictError, NotFoundError
from tests.helpers.experts import make_expert, write
from tests.helpers.tiny_models import save

IDS = torch.tensor([[3, 1, 4, 1, 5, 9]])


@pytest.fixture
def tiny(sqlite_registry, tmp_path):
    save("LlamaForCausalLM", tmp_path / "tiny-llama")
    sqlite_registry.add_model(str(tmp_path / "tiny-llama"), aliases=["tiny"])
    return sqlite_registry


def test_decompose_records_the_fingerprint_and_is_idempotent(tiny):
    spectra = decompose_model(tiny, "tiny")
    assert len(spectra.names()) == 6
    assert tiny.get_model("tiny").spectra_fingerprint == spectra.fingerprint
    assert decompose_model(tiny, "tiny").fingerprint == spectra.fingerprint
    both = decompose_model(tiny, "tiny", modules="all")
    assert len(both.names()) == 14 and tiny.get_model("tiny").spectra_fingerprint == both.fingerprint


def test_shape_tables_have_no_weights_to_load(tiny):
    with pytest.raises(NotFoundError, match="has no weights registered.*--gguf"):
        load_model("llama3-8b", tiny)
    with pytest.raises(NotFoundError, match="t2reg model decompose"):
        load_spectra("tiny", tiny)


def test_published_expert_applies_from_the_registry(tiny, tmp_path):
    spectra = decompose_model(tiny, "tiny")
    v = tiny.publish(write(make_expert(tiny.model_shapes("tiny"), "tiny-llama"), tmp_path / "e.safetensors"))
    model = load_model("tiny", tiny)
    base = model(IDS).logits
    with ExpertPatch(model, spectra, tiny.read_expert(v.ref)):
        assert not torch.allclose(model(IDS).logits, base, atol=1e-3)
    assert torch.equal(model(IDS).logits, base)


def test_export_reloads_with_from_pretrained_and_matches_the_patched_model(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    spectra = decompose_model(tiny, "tiny")
    v = tiny.publish(write(make_expert(tiny.model_shapes("tiny"), "tiny-llama", seed=4), tmp_path / "e.safetensors"))
    out = export_merged(tiny, v.ref, tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    model = load_model("tiny", tiny)
    with torch.no_grad(), ExpertPatch(model, spectra, tiny.read_expert(v.ref)):
        assert torch.allclose(reloaded(IDS).logits, model(IDS).logits, atol=1e-5)
    with pytest.raises(ConflictError, match="not empty"):
        export_merged(tiny, v.ref, out)


def test_import_reference_publishes_an_imported_expert(tiny, tmp_path):
    from t2reg.architectures import matrix_specs

    specs = matrix_specs(tiny.model_config("tiny"), "mlp")
    torch.save({f"learnable_params_module_list.{i}": torch.full((s.rank,), 2.0, dtype=torch.bfloat16)
                for i, s in enumerate(specs)}, tmp_path / "policy_params.pt")
    v = import_reference(tiny, tmp_path / "policy_params.pt", "tiny", "gsm8k", metrics=["gsm8k:accuracy=0.4"])
    assert (v.ref, v.source, v.renormalize) == ("gsm8k-tiny:1", "imported", "nuclear")
    z = tiny.read_expert(v.ref).vectors[specs[0].name]
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-2.0)), rtol=1e-6)
