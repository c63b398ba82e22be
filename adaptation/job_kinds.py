"""The job kinds t2reg ships: adapt, eval and transfer (each a thin layer over its library call)."""

from __future__ import annotations

from typing import Any

from t2reg.adaptation.jobs import JobContext, register_job_kind


def _adapt(context: JobContext) -> dict[str, Any]:
    from t2reg.adaptation.adapt import AdaptSpec, adapt

    spec = AdaptSpec.from_dict(context.job.spec)
    return adapt(context.registry, spec, state=context.state, checkpoint=context.checkpoint,
                 job_id=context.job.id).to_dict()


def _validate_adapt(registry, spec: dict[str, Any]) -> None:
    from t2reg.adaptation.adapt import AdaptSpec

    parsed = AdaptSpec.from_dict(spec)
    parsed.validate()
    registry.get_model(parsed.model)
    registry.pool(parsed.pool)  # names a filter that matches nothing now, not when a worker gets to it


register_job_kind("adapt", _adapt, _validate_adapt)
