"""The transfer's positive control: a copy of a model with seeded noise on its adapted matrices."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from t2reg.adaptation.models import decompose_model
from t2reg.adaptation.models.noisy import add_noisy_model
from t2reg.errors import InvalidInputError
from t2reg.transfer.publishing import transfer_version
from t2reg.transfer import RankOptions
from tests.helpers.experts import make_expert, write
from tests.helpers.tiny_models import register_tiny


@pytest.fixture
def tiny(sqlite_registry, tmp_path):
    return register_tiny(sqlite_registry, tmp_path)


def test_noise_of_the_asked_size_on_the_adapted_matrices_only(tiny):
    info = add_noisy_model(tiny, "tiny", "tiny-noise5", 0.05, seed=3)
    original = load_file(f"{tiny.get_model('tiny').location}/model.safetensors")
    noisy = load_file(f"{info.location}/model.safetensors")
    assert original.keys() == noisy.keys()
    for key, weight in original.items():
        if ".mlp." in key:
            relative = torch.linalg.matrix_norm(noisy[key] - weight) / torch.linalg.matrix_norm(weight)
            assert 0.04 < float(relative) < 0.06, key
        else:
            assert torch.equal(noisy[key], weight), key  # embeddings, attention, norms: untouched
    again = add_noisy_model(tiny, "tiny", "tiny-noise5b", 0.05, seed=3)
    assert all(torch.equal(load_file(f"{again.location}/model.safetensors")[k], v) for k, v in noisy.items())
    with pytest.raises(InvalidInputError, match="noise must lie in"):
        add_noisy_model(tiny, "tiny", "bad", 1.5)


def test_an_ordered_transfer_to_the_copy_keeps_the_vectors_a_shuffled_one_does_not(tiny, tmp_path):
    add_noisy_model(tiny, "tiny", "tiny-noise2", 0.02)
    decompose_model(tiny, "tiny-noise2")
    expert = make_expert(tiny.model_shapes("tiny"), tiny.get_model("tiny").name, seed=1)
    v = tiny.publish(write(expert, tmp_path / "e.safetensors"), model="tiny", task="arc-easy")
    ordered = transfer_version(tiny, v.ref, "tiny-noise2", RankOptions(layer_align="index", rank_align="index"))
    shuffled = transfer_version(tiny, v.ref, "tiny-noise2",
                                RankOptions(layer_align="index", rank_align="index", baseline="shuffled", seed=1))
    for name, z in expert.vectors.items():
        np.testing.assert_array_equal(ordered.vectors[name], z)  # equal shapes: z copied as is
        assert not np.array_equal(shuffled.vectors[name], z) and np.allclose(np.sort(shuffled.vectors[name]), np.sort(z))
