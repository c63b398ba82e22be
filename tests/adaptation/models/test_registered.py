"""Models through the registry: decompose, load, apply a published expert."""

import pytest
import torch

from t2reg.adaptation import ExpertPatch, decompose_model, load_model, load_spectra
from t2reg.errors import NotFoundError
from tests.helpers.experts import make_expert, write
from tests.helpers.tiny_models import register_tiny

IDS = torch.tensor([[3, 1, 4, 1, 5, 9]])


@pytest.fixture
def tiny(sqlite_registry, tmp_path):
    return register_tiny(sqlite_registry, tmp_path)


def test_decompose_records_the_fingerprint_and_is_idempotent(tiny):
    spectra = decompose_model(tiny, "tiny")
    assert len(spectra.names()) == 6
    assert tiny.get_model("tiny").spectra_fingerprint == spectra.fingerprint
    assert decompose_model(tiny, "tiny").fingerprint == spectra.fingerprint
    both = decompose_model(tiny, "tiny", modules="all")
    assert len(both.names()) == 14 and tiny.get_model("tiny").spectra_fingerprint == both.fingerprint


def test_shape_tables_have_no_weights_to_load(tiny):
    with pytest.raises(NotFoundError, match="has no weights registered") as info:
        load_model("llama3-8b", tiny)
    assert info.value.remedy.words() == ("model", "add", "llama3-8b", "gguf", "FILE")
    with pytest.raises(NotFoundError, match="no spectra at") as info:
        load_spectra("tiny", tiny)
    assert info.value.remedy.command == ("model", "decompose")


def test_published_expert_applies_from_the_registry(tiny, tmp_path):
    spectra = decompose_model(tiny, "tiny")
    v = tiny.publish(write(make_expert(tiny.model_shapes("tiny"), "tiny-llama"), tmp_path / "e.safetensors"))
    model = load_model("tiny", tiny)
    base = model(IDS).logits
    with ExpertPatch(model, spectra, tiny.read_expert(v.ref)):
        assert not torch.allclose(model(IDS).logits, base, atol=1e-3)
    assert torch.equal(model(IDS).logits, base)
