"""Applying, mixing and restoring experts on real (tiny, random) transformers models."""

import json

import numpy as np
import pytest
import torch

from t2reg.adaptation import ExpertPatch, mix, patched_weight
from t2reg.adaptation.models.files import load_model, matrix_loader
from t2reg.architectures import matrix_specs
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Expert, ExpertMeta
from t2reg.spectra import Spectra, decompose
from tests.helpers.tiny_models import ARCHITECTURES, save

IDS = torch.tensor([[1, 5, 9, 2, 7, 3]])


@pytest.fixture(scope="module", params=ARCHITECTURES)
def tiny(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    model_dir = save(request.param, root / "model")
    config = json.loads((model_dir / "config.json").read_text())
    for group in ("mlp", "attn"):
        decompose(matrix_specs(config, group), matrix_loader(model_dir), root / "spectra", model="tiny", group=group)
    return load_model(model_dir), Spectra.load(root / "spectra")


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _logits(model):
    with torch.no_grad():
        return model(IDS).logits


def _random_z(spectra, names, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(spectra[n].S.shape[0], generator=g) + 0.5 for n in names}


def test_identity_expert_reproduces_logits(tiny):
    model, spectra = tiny
    base = _logits(model)
    with ExpertPatch(model, spectra, {n: torch.ones(spectra[n].S.shape[0]) for n in spectra.names()}):
        assert torch.allclose(_logits(model), base, atol=1e-4)


def test_restore_is_bit_exact_and_only_named_matrices_change(tiny):
    model, spectra = tiny
    before = _snapshot(model)
    base = _logits(model)
    names = spectra.names()[:3]
    with ExpertPatch(model, spectra, _random_z(spectra, names)):
        during = _snapshot(model)
        assert not torch.allclose(_logits(model), base, atol=1e-3)
    changed = {n for n in before if not torch.equal(before[n], during[n])}
    assert changed == set(names)
    after = _snapshot(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_patched_weight_matches_the_reference_formula(tiny):
    _, spectra = tiny
    name = spectra.names()[0]
    f = spectra[name]
    z = torch.rand(f.S.shape[0]) + 0.5
    c = f.S.sum() / (f.S * z).sum()
    reference = f.U @ torch.diag_embed(f.S * z) @ f.Vh * c
    assert torch.allclose(patched_weight(f, z, "nuclear"), reference, atol=1e-5)
    assert torch.allclose(patched_weight(f, z, "none"), f.U @ torch.diag_embed(f.S * z) @ f.Vh, atol=1e-5)


def test_zero_denominator_is_an_error_and_leaves_the_model_intact(tiny):
    model, spectra = tiny
    before = _snapshot(model)
    names = spectra.names()
    z = {n: torch.ones(spectra[n].S.shape[0]) for n in names}
    z[names[-1]] = torch.zeros(spectra[names[-1]].S.shape[0])
    with pytest.raises(InvalidInputError, match="sum\\(sigma \\* z\\) = 0"):
        with ExpertPatch(model, spectra, z):
            pass
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_expert_object_carries_its_renormalisation(tiny):
    model, spectra = tiny
    names = spectra.names()[:2]
    z = {n: v.numpy() * 2 for n, v in _random_z(spectra, names).items()}
    with ExpertPatch(model, spectra, Expert(z, ExpertMeta(base_model="tiny", renormalize="none"))):
        plain = _logits(model)
    with ExpertPatch(model, spectra, Expert(z, ExpertMeta(base_model="tiny", renormalize="nuclear"))):
        renormalised = _logits(model)
    assert not torch.allclose(plain, renormalised, atol=1e-4)


def test_mixtures_equal_the_hand_computed_combination():
    a = {"m1": np.array([1.0, 2.0], np.float32), "m2": np.array([3.0, 4.0, 5.0], np.float32)}
    b = {"m1": np.array([0.0, 1.0], np.float32)}  # no m2: contributes z = 1 there
    per_vector = mix([a, b], [0.25, 0.75])
    assert torch.allclose(per_vector["m1"], torch.tensor([0.25, 1.25]))
    assert torch.allclose(per_vector["m2"], torch.tensor([0.75 + 0.75, 1.0 + 0.75, 1.25 + 0.75]))
    per_matrix = mix([a, b], [[1.0, 0.0], [0.5, 1.0]])  # columns follow sorted names: m1, m2
    assert torch.allclose(per_matrix["m1"], torch.tensor([1.0, 2.5]))
    assert torch.allclose(per_matrix["m2"], torch.tensor([1.0, 1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="alpha has shape"):
        mix([a, b], [1.0, 2.0, 3.0])


def test_a_mixture_applies_like_any_expert(tiny):
    model, spectra = tiny
    names = spectra.names()
    e1, e2 = _random_z(spectra, names, 1), _random_z(spectra, names, 2)
    with ExpertPatch(model, spectra, mix([e1, e2], [0.3, 0.7])):
        mixed = _logits(model)
    manual = {n: 0.3 * e1[n] + 0.7 * e2[n] for n in names}
    with ExpertPatch(model, spectra, manual):
        assert torch.allclose(_logits(model), mixed, atol=1e-6)


def test_logit_mixtures_extrapolate_and_strength_scales_the_effect():
    from t2reg.adaptation.patching import mix_logits, strengthen

    a = {"m": torch.tensor([0.5, 0.8, 0.2])}
    b = {"m": torch.tensor([0.5, 0.6, 0.4])}
    both = mix_logits([a, b], [1.0, 1.0])["m"]  # logits add: 0.8 and 0.6 together go past either
    assert torch.allclose(both, torch.sigmoid(torch.logit(a["m"]) + torch.logit(b["m"])))
    assert both[1] > 0.8 and both[2] < 0.2 and both[0] == pytest.approx(0.5)
    assert torch.allclose(mix_logits([a], [1.0])["m"], a["m"], atol=1e-6)
    sigma = {"m": torch.tensor([3.0, 2.0, 1.0])}
    c = sigma["m"].sum() / (sigma["m"] * a["m"]).sum()  # the nuclear renormalisation of a
    assert torch.allclose(strengthen(a, sigma, "nuclear", 0.0)["m"], torch.ones(3))  # s = 0: the base model
    assert torch.allclose(strengthen(a, sigma, "nuclear", 1.0)["m"], a["m"] * c)  # s = 1: the expert itself
    doubled = strengthen(a, sigma, "nuclear", 2.0)["m"]
    assert torch.allclose(doubled - 1, 2 * (a["m"] * c - 1))  # s = 2: twice its effect on the spectrum
