import json

import pytest
import torch

from t2reg.architectures import matrix_specs
from t2reg.errors import IntegrityCheckError, NotFoundError
from t2reg.spectra import MANIFEST, Spectra, decompose, svd
from t2reg.adaptation.models.files import matrix_loader
from tests.helpers.tiny_models import save


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save("LlamaForCausalLM", tmp_path_factory.mktemp("m") / "llama")


def _specs(tiny_dir, group="mlp"):
    return matrix_specs(json.loads((tiny_dir / "config.json").read_text()), group)


def test_spectra_reconstruct_every_matrix(tiny_dir, tmp_path):
    manifest = decompose(_specs(tiny_dir), matrix_loader(tiny_dir), tmp_path / "s", model="tiny")
    spectra = Spectra.load(tmp_path / "s", verify=True)
    load = matrix_loader(tiny_dir)
    for spec in _specs(tiny_dir):
        f = spectra[spec.name]
        assert torch.allclose((f.U * f.S) @ f.Vh, load(spec), atol=1e-5)
        assert torch.all(f.S[:-1] >= f.S[1:])  # canonical descending order
        assert manifest["matrices"][spec.name]["relative_error"] < 1e-5
    for key in ("model", "revision", "dtype", "svd_routine", "torch_version", "sign_convention", "fingerprint"):
        assert manifest[key] is not None
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"].values())


def test_sign_convention_makes_factors_deterministic():
    w = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    a, b = svd(w), svd(w.clone())
    assert torch.equal(a.U, b.U) and torch.equal(a.Vh, b.Vh)
    pivots = a.U.abs().argmax(dim=0)
    assert torch.all(a.U[pivots, torch.arange(8)] > 0)
    # -W has the same singular values; the convention keeps U and puts the sign on Vh.
    negated = svd(-w)
    assert torch.allclose(negated.U, a.U, atol=1e-5) and torch.allclose(negated.Vh, -a.Vh, atol=1e-5)


def test_loading_is_a_memory_map(tiny_dir, tmp_path):
    decompose(_specs(tiny_dir), matrix_loader(tiny_dir), tmp_path / "s", model="tiny")
    spectra = Spectra.load(tmp_path / "s")
    shard = str((tmp_path / "s" / "mlp-0000.safetensors").resolve())
    ranges = [
        tuple(int(x, 16) for x in line.split()[0].split("-"))
        for line in open("/proc/self/maps")
        if line.rstrip().endswith(shard)
    ]
    ptr = spectra["model.layers.0.mlp.up_proj.weight"].U.data_ptr()
    assert any(start <= ptr < end for start, end in ranges), "factors are not backed by the shard's mapping"


def test_interrupted_run_resumes_where_it_stopped(tiny_dir, tmp_path):
    specs = _specs(tiny_dir)
    calls = []
    load = matrix_loader(tiny_dir)

    def failing_after_first_layer(spec):
        if spec.layer == 1:
            raise KeyboardInterrupt
        calls.append(spec.name)
        return load(spec)

    with pytest.raises(KeyboardInterrupt):
        decompose(specs, failing_after_first_layer, tmp_path / "s", model="tiny")
    partial = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert list(partial["shards"]) == ["mlp-0000.safetensors"]
    resumed = []
    decompose(specs, lambda s: resumed.append(s.name) or load(s), tmp_path / "s", model="tiny")
    assert {s.name for s in specs if s.layer == 1} == set(resumed)  # layer 0 was not redone
    assert len(Spectra.load(tmp_path / "s").names()) == len(specs)
    fresh = decompose(specs, load, tmp_path / "fresh", model="tiny")
    assert fresh["fingerprint"] == json.loads((tmp_path / "s" / MANIFEST).read_text())["fingerprint"]


def test_a_tampered_shard_fails_verification(tiny_dir, tmp_path):
    decompose(_specs(tiny_dir), matrix_loader(tiny_dir), tmp_path / "s", model="tiny")
    shard = tmp_path / "s" / "mlp-0000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(IntegrityCheckError, match="checksum"):
        Spectra.load(tmp_path / "s", verify=True)


def test_missing_spectra_and_missing_matrix_say_what_to_run(tiny_dir, tmp_path):
    with pytest.raises(NotFoundError, match="no spectra at") as missing:
        Spectra.load(tmp_path / "none")
    assert missing.value.remedy.command == ("model", "decompose")
    decompose(_specs(tiny_dir), matrix_loader(tiny_dir), tmp_path / "s", model="tiny")
    with pytest.raises(NotFoundError, match="no spectrum for") as partial:
        Spectra.load(tmp_path / "s")["model.layers.0.self_attn.q_proj.weight"]
    assert partial.value.remedy.command == ("model", "decompose") and partial.value.remedy.options == (("modules", "all"),)
    assert "--" not in str(partial.value)  # the library's words name no flag
