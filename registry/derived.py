"""Publishing an expert that t2reg made itself (trained, transferred, adapted, imported).

Every such path hands :func:`publish_derived` a :class:`DerivedExpert`: the
vectors, where they came from and the lineage edges. The file's metadata is
built here from the registered base model, once; and a job's result is
published once: a resumed job that already published gets that version back
instead of a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from t2reg.expert_file import Expert, ExpertMeta
from t2reg.protocols import Measurement
from t2reg.registry.entities import ExpertVersion, Lineage
from t2reg.enums import Source

if TYPE_CHECKING:
    from t2reg.registry.api import Registry

JOB_TAG = "job"  # the tag naming the job that published a version


def published_by(tag: str | None) -> int | None:
    """The job id a version's ``job`` tag names, or None (no tag, or a hand-set value that is not an id)."""
    return int(tag) if tag and tag.isdigit() else None


@dataclass(frozen=True)
class DerivedExpert:
    """What a derived version is made of; ``provenance`` adds to ``{"source": source}`` in the file."""

    vectors: Mapping[str, np.ndarray]
    model: str
    task: str | None
    source: Source
    name: str | None  # None: the registry's default, TASK-MODEL
    renormalize: str = "nuclear"
    provenance: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    measurements: tuple[Measurement, ...] = ()  # its scores, each run under its protocol
    lineage: tuple[Lineage, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    job_id: int | None = None  # publish once per job


def publish_derived(registry: Registry, derived: DerivedExpert) -> ExpertVersion:
    """Publish ``derived`` (or return what its job already published)."""
    if derived.job_id is not None:
        done = registry.list(where=f"tag.{JOB_TAG}={derived.job_id}", all_versions=True)
        if done:
            return done[0]
    info = registry.get_model(derived.model)
    meta = ExpertMeta(base_model=info.name, architecture=info.architecture, base_model_revision=info.revision,
                      renormalize=derived.renormalize, task=derived.task,
                      provenance={**derived.provenance, "source": derived.source.value})
    vectors = {name: np.asarray(z, dtype=np.float32) for name, z in derived.vectors.items()}
    tags = dict(derived.tags)
    if derived.job_id is not None:
        tags[JOB_TAG] = str(derived.job_id)
    return registry.publish(Expert(vectors, meta), model=derived.model, task=derived.task, name=derived.name,
                            description=derived.description, measurements=derived.measurements, lineage=derived.lineage,
                            tags=tags)
