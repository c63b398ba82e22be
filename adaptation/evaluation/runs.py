"""An evaluation run: score an expert (or a base model alone) on a task and record the score."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from t2reg.adaptation.backends import open_for
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import Progress, evaluate
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import Example, Task, get_task
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.registry import Registry


@dataclass
class EvaluationRun:
    """A recorded evaluation: what was scored (an expert ref or a model name) and how it did."""

    subject: str
    result: EvalResult
    replicas: list[dict[str, Any]] | None = None  # per-replica throughput, when it ran on Ray replicas

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, **self.result.to_dict(),
                **({"replicas": self.replicas} if self.replicas is not None else {})}


def task_examples(spec: EvalSpec) -> tuple[Task, list[Example]]:
    """The spec's task (with its generation budget) and the examples it scores."""
    task = get_task(spec.task)
    if spec.max_new_tokens is not None:
        task = dataclasses.replace(task, max_new_tokens=spec.max_new_tokens)
    return task, first(task.examples(spec.split, resolve_data_dir(spec.data_dir)), spec.limit)


def first(examples: Sequence[Example], limit: int | None) -> list[Example]:
    return list(examples) if limit is None else list(examples[:limit])


def run_evaluation(registry: Registry, spec: EvalSpec, progress: Progress | None = None) -> EvaluationRun:
    """Evaluate and record: on the version for an expert, on the model for a base model."""
    spec.validate()
    task, examples = task_examples(spec)
    version = registry.get(spec.ref) if spec.ref else None
    model = version.model if version else spec.base
    replicas = None
    if spec.replicas:
        from t2reg.adaptation.distributed.sharding import evaluate_on_replicas  # Ray is loaded only when asked for

        expert = registry.read_expert(version.ref) if version else None
        result, replicas = evaluate_on_replicas(registry, spec, model, task, examples, expert, progress)
    else:
        with open_for(registry, model, spec.backend, device=spec.device, dtype=spec.dtype,
                      batch_size=spec.batch_size) as engine:
            if version is None:
                result = evaluate(engine, task, examples, spec.split, spec.mode, progress)
            else:
                with engine.patched(load_spectra(model, registry), registry.read_expert(version.ref)):
                    result = evaluate(engine, task, examples, spec.split, spec.mode, progress)
    if version is None:
        for metric in result.metrics(spec.split):
            registry.record_model_evaluation(model, metric)
        return EvaluationRun(registry.get_model(model).name, result, replicas)
    registry.record(version.ref, result.metrics(spec.split), source="eval")
    return EvaluationRun(version.ref, result, replicas)
