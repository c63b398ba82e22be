"""Reference-code experts published as format v1 (imported, nuclear renormalisation)."""

import numpy as np
import pytest
import torch

from t2reg.adaptation.interop.reference import import_reference
from tests.helpers.tiny_models import register_tiny

@pytest.fixture
def tiny(sqlite_registry, tmp_path):
    return register_tiny(sqlite_registry, tmp_path)


def test_import_reference_publishes_an_imported_expert(tiny, tmp_path):
    from t2reg.architectures import matrix_specs

    specs = matrix_specs(tiny.model_config("tiny"), "mlp")
    torch.save({f"learnable_params_module_list.{i}": torch.full((s.rank,), 2.0, dtype=torch.bfloat16)
                for i, s in enumerate(specs)}, tmp_path / "policy_params.pt")
    v = import_reference(tiny, tmp_path / "policy_params.pt", "tiny", "gsm8k", metrics=["gsm8k:accuracy=0.4"])
    assert (v.ref, v.source, v.renormalize) == ("gsm8k-tiny:1", "imported", "nuclear")
    z = tiny.read_expert(v.ref).vectors[specs[0].name]
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-2.0)), rtol=1e-6)
