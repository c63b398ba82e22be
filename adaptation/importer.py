"""Publishing reference-code experts (``policy_params.pt``, ``learnable_params.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from t2reg.architectures import matrix_specs
from t2reg.expert_file import ExpertMeta
from t2reg.reference_import import read_reference
from t2reg.registry import ExpertVersion, Registry


def import_reference(
    registry: Registry,
    path: Path,
    model: str,
    task: str,
    name: str | None = None,
    max_mult: float = 1.0,
    metrics: Iterable[str] = (),
) -> ExpertVersion:
    """Convert a reference-code file to format v1 and publish it (``source = imported``)."""
    info = registry.get_model(model)
    config = registry.model_config(model)
    meta = ExpertMeta(base_model=info.name, architecture=info.architecture, base_model_revision=info.revision, task=task)
    expert = read_reference(Path(path), matrix_specs(config, "mlp"), meta, max_mult=max_mult)
    return registry.publish(expert, model=model, task=task, name=name, metrics=metrics)
