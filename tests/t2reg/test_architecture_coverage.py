"""The architecture table against real transformers models built from configs."""

import pytest
import torch

from t2reg.architectures import get_architecture, matrix_specs
from tests.helpers.tiny_models import ARCHITECTURES, build


def _linear_weights(model):
    from transformers.pytorch_utils import Conv1D

    for module_name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, Conv1D)) and ".layers." in f".{module_name}." or ".h." in module_name:
            if isinstance(module, (torch.nn.Linear, Conv1D)):
                yield f"{module_name}.weight", module


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_table_covers_every_linear_weight_with_the_right_shape(architecture):
    model = build(architecture)
    specs = {s.name: s for s in matrix_specs(model.config.to_dict())}
    weights = dict(_linear_weights(model))
    assert weights, "no decoder linear layers found"
    assert set(specs) == set(weights)
    for name, spec in specs.items():
        shape = tuple(model.get_parameter(name).shape)
        expected = (spec.in_features, spec.out_features) if spec.transposed else (spec.out_features, spec.in_features)
        assert shape == expected, name
        assert get_architecture(architecture).locate(name) == (spec.layer, spec.role)
