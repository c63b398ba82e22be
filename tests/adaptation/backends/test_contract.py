"""The backend contract, checked on every backend (the checks: tests/helpers/backend_contract.py): hf on a tiny
random Llama, the fake backend written for these tests, and vLLM (in test_vllm.py, on SmolLM2, in its own
process)."""

import dataclasses

import pytest
import torch

from t2reg.adaptation.backends import open_backend
from t2reg.spectra import Spectra, svd
from tests.helpers.backend_contract import CHECKS, Subject
from tests.helpers.fake_backend import MATRIX, FakeBackend
from tests.helpers.tiny_tokenizer import build, save_model_with_tokenizer


def _expert(spectra: Spectra, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: 1 + 0.8 * torch.randn(len(spectra[n].S), generator=g) for n in spectra.names()}


def _hf(tmp_path) -> Subject:
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", seed=0, initializer_range=0.3),
                           batch_size=3)
    names = [n for n, _ in backend.model.named_parameters() if n.endswith("mlp.down_proj.weight")]
    spectra = Spectra(tmp_path, {}, {n: svd(backend.model.get_parameter(n)) for n in names})
    return Subject(backend, spectra, _expert(spectra, 1))


def _fake(tmp_path) -> Subject:
    backend = FakeBackend(build())
    spectra = Spectra(tmp_path, {}, {MATRIX: svd(backend.weights[MATRIX])})
    return Subject(backend, spectra, _expert(spectra, 1))


@pytest.fixture(scope="module", params=["hf", "fake"])
def subject(request, tmp_path_factory):
    made = {"hf": _hf, "fake": _fake}[request.param](tmp_path_factory.mktemp(request.param))
    yield made
    made.backend.close()


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_backend_keeps_the_contract(subject, check):
    CHECKS[check](subject)


def _forgets_originals(backend):
    backend.restore = lambda: backend._saved.clear()


def _ignores_top_p(backend):
    generate = backend.generate
    backend.generate = lambda requests: generate([dataclasses.replace(
        r, sampling=dataclasses.replace(r.sampling, top_p=1.0)) for r in requests])


def _keeps_every_row(backend):
    make = backend.decoder

    def decoder():
        made = make()
        made.keep = lambda indices: None
        return made

    backend.decoder = decoder


@pytest.mark.parametrize(("breakage", "check"), [(_forgets_originals, "patched_weights_and_restore"),
                                                 (_ignores_top_p, "seeded_sampling_and_the_nucleus"),
                                                 (_keeps_every_row, "decoded_rows_that_join_and_leave_match_generation")])
def test_a_backend_that_breaks_the_contract_is_caught(tmp_path, breakage, check):
    """The checks can fail: the fake backend, broken one way at a time, fails the check of that promise."""
    subject = _fake(tmp_path)
    breakage(subject.backend)
    with pytest.raises(AssertionError):
        CHECKS[check](subject)
