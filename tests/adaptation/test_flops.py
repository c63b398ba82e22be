"""Counting the arithmetic a run asks for, on a tiny real model: every linear layer's forward pass,
the backward work autograd will do, and weight rebuilds; nothing outside a count."""

import json

import pytest
import torch

from t2reg.adaptation import ExpertPatch, flops
from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.flops import FlopCount
from t2reg.adaptation.models.files import matrix_loader
from t2reg.architectures import matrix_specs
from t2reg.spectra import Spectra, decompose
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_with_tokenizer(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def backend(model_dir):
    return open_backend("hf", model_dir, batch_size=4)


def _linear_flops(model, tokens: int, head_rows: int) -> int:
    """2 * rows * in * out over every nn.Linear: ``tokens`` rows through the body, ``head_rows`` through the
    output projection."""
    head = model.get_output_embeddings()
    body = sum(2 * tokens * m.in_features * m.out_features for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m is not head)
    return body + 2 * head_rows * head.in_features * head.out_features


def test_a_forward_pass_counts_every_linear_layer_padding_included(backend):
    ids, mask = backend.pad([[5, 6, 7, 8, 9], [5, 6]])  # the second row is padded to 5 tokens
    with FlopCount() as count:
        backend.logits(ids, mask, keep=1)
    assert count.flops == {"forward": {"float32": _linear_flops(backend.model, 10, 2)}}
    assert count.total == count.by_dtype()["float32"] == count.by_kind()["forward"]


def test_backward_work_is_counted_when_autograd_will_need_it(backend):
    ids, mask = backend.pad([[5, 6, 7, 8, 9]])
    name = "model.layers.0.mlp.up_proj.weight"
    weight = backend.model.get_parameter(name).detach().clone().requires_grad_(True)
    with FlopCount() as count:
        backend.logits(ids, mask, keep=1, weights={name: weight}).sum().backward()
    up = backend.model.get_submodule("model.layers.0.mlp.up_proj")
    assert count.by_kind()["forward"] == _linear_flops(backend.model, 5, 1)
    # the replaced weight's gradient (one product the size of its forward) and the input gradients of every
    # linear layer above it
    backward = count.by_kind()["backward"]
    assert backward > 2 * 5 * up.in_features * up.out_features and backward < 2 * count.by_kind()["forward"]


def test_rebuilding_a_matrix_counts_its_product_and_nothing_counts_outside(backend, model_dir, tmp_path):
    config = json.loads((model_dir / "config.json").read_text())
    decompose(matrix_specs(config, "mlp"), matrix_loader(model_dir), tmp_path / "s", model="tiny")
    spectra = Spectra.load(tmp_path / "s")
    z = {n: torch.full_like(spectra[n].S, 0.9) for n in spectra.names()}
    expected = sum(2 * spectra[n].U.shape[0] * spectra[n].U.shape[1] * spectra[n].Vh.shape[1] for n in z)
    with FlopCount() as outer:
        with FlopCount() as inner:
            with ExpertPatch(backend.model, spectra, z):
                pass
    assert inner.flops == outer.flops == {"rebuild": {"float32": expected}}
    with ExpertPatch(backend.model, spectra, z):
        flops.add(flops.FORWARD, torch.float32, 10**9)  # outside every count: goes nowhere
    assert outer.total == expected and flops._HOOK is None  # the global hook leaves with the last count
