"""Publishing reference-code experts (``policy_params.pt``, ``learnable_params.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from t2reg.architectures import matrix_specs
from t2reg.protocols import Measurement
from t2reg.reference_import import read_reference
from t2reg.registry import ExpertVersion, Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.validation import parse_metric
from t2reg.enums import Source


def import_reference(
    registry: Registry,
    path: Path,
    model: str,
    task: str,
    name: str | None = None,
    max_mult: float = 1.0,
    metrics: Iterable[str] = (),
) -> ExpertVersion:
    """Convert a reference-code file to format v1 and publish it (``source = imported``, nuclear renormalisation)."""
    registry.get_model(model)  # an unknown model is named before the file is read
    imported = read_reference(Path(path), matrix_specs(registry.model_config(model), "mlp"), max_mult=max_mult)
    return registry.publish_derived(DerivedExpert(
        imported.vectors, model=model, task=task, source=Source.IMPORTED, name=name,
        renormalize="nuclear", provenance=imported.provenance,
        measurements=(Measurement(tuple(parse_metric(m, default_task=task) for m in metrics)),)))
