"""An evaluation run: score an expert (or a base model alone) on a task and record the score under its
protocol, with its per-question results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from t2reg.adaptation.backends import open_for
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import Progress, measure
from t2reg.adaptation.evaluation.spec import EvalRecord, EvalSpec
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import get_task
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.registry import Registry


@dataclass
class EvaluationRun:
    """A recorded evaluation: what was scored (an expert ref or a model name) and how it did."""

    subject: str
    result: EvalResult
    replicas: list[dict[str, Any]] | None = None  # per-replica throughput, when it ran on Ray replicas

    def record(self) -> EvalRecord:
        return EvalRecord(self.subject, self.result.record(), self.replicas)

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_dict()


def questions_for(spec: EvalSpec) -> Questions:
    """The spec's questions: its task (with its generation budget) and split, whole or sampled."""
    task = get_task(spec.task)
    if spec.max_new_tokens is not None:
        task = dataclasses.replace(task, max_new_tokens=spec.max_new_tokens)
    return Questions.draw(task, spec.split, spec.limit, spec.seed, resolve_data_dir(spec.data_dir))


def run_evaluation(registry: Registry, spec: EvalSpec, progress: Progress | None = None) -> EvaluationRun:
    """Evaluate and record: on the version for an expert, on the model for a base model."""
    spec.validate()
    questions = questions_for(spec)
    version = registry.get(spec.ref) if spec.ref else None
    model = version.model if version else spec.base
    replicas = None
    if spec.replicas:
        from t2reg.adaptation.distributed.sharding import evaluate_on_replicas  # Ray is loaded only when asked for

        expert = registry.read_expert(version.ref) if version else None
        result, replicas = evaluate_on_replicas(registry, spec, model, questions, expert, progress)
    else:
        with open_for(registry, model, spec.backend, device=spec.device, dtype=spec.dtype,
                      batch_size=spec.batch_size) as backend:
            if version is None:
                result = measure(backend, questions, spec.mode, spec.permute, progress)
            else:
                with backend.patched(load_spectra(model, registry), registry.read_expert(version.ref)):
                    result = measure(backend, questions, spec.mode, spec.permute, progress)
    return EvaluationRun(record(registry, result, ref=spec.ref, model=model), result, replicas)


def record(registry: Registry, result: EvalResult, *, ref: str | None = None, model: str | None = None,
           source: str = "eval") -> str:
    """Record ``result`` (metrics, protocol, per-question results) on the expert ``ref`` or, without one,
    on the base ``model``; returns what was scored."""
    measurement = result.measurement()
    if ref is not None:
        return registry.record(ref, measurement.metrics, source=source, protocol=measurement.protocol,
                               results=measurement.results).ref
    registry.record_model_evaluation(model, measurement.metrics, source=source, protocol=measurement.protocol,
                                     results=measurement.results)
    return registry.get_model(model).name
