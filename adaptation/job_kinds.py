"""The job kinds t2reg ships: adapt, train, eval and transfer (each a thin layer over its library call)."""

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


def _eval(context: JobContext) -> dict[str, Any]:
    """One step, so nothing to checkpoint: a resumed eval job starts over."""
    from t2reg.adaptation.eval_runs import run_evaluation

    spec = dict(context.job.spec)
    result, subject = run_evaluation(context.registry, spec.pop("task"), **spec)
    return {"subject": subject, **result.to_dict()}


def _validate_eval(registry, spec: dict[str, Any]) -> None:
    from t2reg.adaptation.tasks import get_task

    get_task(spec["task"])
    registry.get(spec["ref"]) if spec.get("ref") else registry.get_model(spec["base"])


def _transfer(context: JobContext) -> dict[str, Any]:
    """Transfers are reused when they exist, so a resumed job redoes only what is missing."""
    from t2reg.transfer.publishing import transfer_model, transfer_version

    spec = dict(context.job.spec)
    ref, source, target = spec.pop("ref", None), spec.pop("source_model", None), spec.pop("target")
    if ref:
        results = [transfer_version(context.registry, ref, target, **spec)]
    else:
        results = transfer_model(context.registry, source, target, **spec)
    return {"transfers": [r.to_dict() for r in results]}


def _validate_transfer(registry, spec: dict[str, Any]) -> None:
    registry.get_model(spec["target"])
    registry.get(spec["ref"]) if spec.get("ref") else registry.get_model(spec["source_model"])


register_job_kind("eval", _eval, _validate_eval)
register_job_kind("transfer", _transfer, _validate_transfer)


def _train(context: JobContext) -> dict[str, Any]:
    from t2reg.adaptation.training import TrainSpec, train

    spec = TrainSpec.from_dict(context.job.spec)
    return train(context.registry, spec, state=context.state, checkpoint=context.checkpoint,
                 job_id=context.job.id).to_dict()


def _validate_train(registry, spec: dict[str, Any]) -> None:
    from t2reg.adaptation.training import TrainSpec

    parsed = TrainSpec.from_dict(spec)
    parsed.validate()
    registry.get_model(parsed.model)


register_job_kind("train", _train, _validate_train)
