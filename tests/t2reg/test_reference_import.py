import collections

import numpy as np
import pytest
import torch

from t2reg.architectures import matrix_specs
from t2reg.builtin_models import BUILTIN_MODELS
from t2reg.errors import ExpertFileError
from t2reg.expert_file import Expert, ExpertMeta, dumps_expert, loads_expert
from t2reg.reference_import import read_reference

CONFIG = {**BUILTIN_MODELS["smollm2-135m"].config, "num_hidden_layers": 2}
SPECS = matrix_specs(CONFIG, "mlp")
META = ExpertMeta(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", task="gsm8k")


def _logits(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s.rank, generator=g).to(torch.bfloat16) for s in SPECS]


def test_policy_params_are_positional_over_mlp_in_state_dict_order(tmp_path):
    logits = _logits()
    torch.save({f"learnable_params_module_list.{i}": p for i, p in enumerate(logits)}, tmp_path / "policy_params.pt")
    imported = read_reference(tmp_path / "policy_params.pt", SPECS, max_mult=2.0)
    assert [s.role for s in SPECS[:3]] == ["gate", "up", "down"]
    for spec, p in zip(SPECS, logits):
        np.testing.assert_allclose(imported.vectors[spec.name], torch.sigmoid(p.float()).numpy() * 2.0, rtol=1e-6)
    assert imported.provenance == {"reference_layout": "policy_params", "reference_file": "policy_params.pt",
                                   "max_mult": 2.0}
    expert = Expert(imported.vectors, META)
    assert loads_expert(dumps_expert(expert)).vectors.keys() == expert.vectors.keys()  # valid format v1


def test_legacy_learnable_params_are_keyed_by_name(tmp_path):
    logits = _logits(1)
    torch.save(collections.OrderedDict((s.name, p) for s, p in zip(SPECS, logits)), tmp_path / "learnable_params.pt")
    imported = read_reference(tmp_path / "learnable_params.pt", SPECS)
    np.testing.assert_allclose(imported.vectors[SPECS[4].name], torch.sigmoid(logits[4].float()).numpy(), rtol=1e-6)
    assert imported.provenance["reference_layout"] == "learnable_params"


def test_wrong_count_is_refused(tmp_path):
    torch.save({"learnable_params_module_list.0": torch.zeros(4)}, tmp_path / "p.pt")
    with pytest.raises(ExpertFileError, match="holds 1 positional vectors, but the model has 6"):
        read_reference(tmp_path / "p.pt", SPECS)


class Payload:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_files_that_need_full_unpickling_are_refused(tmp_path, capsys):
    torch.save({"learnable_params_module_list.0": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ExpertFileError, match="refused: loading it needs full unpickling"):
        read_reference(tmp_path / "evil.pt", SPECS)
    assert "this would have run" not in capsys.readouterr().out


def test_garbage_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a torch file")
    with pytest.raises(ExpertFileError):
        read_reference(tmp_path / "x.pt", SPECS)
