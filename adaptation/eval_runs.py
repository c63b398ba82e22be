"""``t2reg eval``: score an expert (or the base model) on a task and record it in the registry."""

from __future__ import annotations

import dataclasses

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.datasets import data_dir as resolve_data_dir
from t2reg.adaptation.evaluate import EvalResult, Progress, evaluate
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.tasks import get_task
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Metric
from t2reg.registry import Registry


def run_evaluation(
    registry: Registry,
    task_name: str,
    *,
    ref: str | None = None,
    base: str | None = None,
    split: str = "test",
    limit: int | None = None,
    backend: str = "hf",
    data_dir: str | None = None,
    batch_size: int = 16,
    mode: str = "auto",
    device: str | None = None,
    dtype: str = "float32",
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
) -> tuple[EvalResult, str]:
    """Evaluate and record; returns the result and what was evaluated (a ref or a model name)."""
    if (ref is None) == (base is None):
        raise InvalidInputError("evaluate an expert REF or --base MODEL (one of them)")
    task = get_task(task_name)
    if max_new_tokens is not None:
        task = dataclasses.replace(task, max_new_tokens=max_new_tokens)
    examples = task.examples(split, resolve_data_dir(data_dir))
    if limit is not None:
        if limit < 1:
            raise InvalidInputError("--limit must be at least 1")
        examples = examples[:limit]
    version = registry.get(ref) if ref else None
    model = version.model if version else base
    engine = open_backend(backend, weights_dir(registry, model), device=device, dtype=dtype, batch_size=batch_size)
    try:
        if version is None:
            result = evaluate(engine, task, examples, split, mode, progress)
        else:
            spectra = load_spectra(model, registry)
            with engine.patched(spectra, registry.read_expert(version.ref)):
                result = evaluate(engine, task, examples, split, mode, progress)
    finally:
        engine.close()
    if version is None:
        for metric in result.metrics(split):
            registry.record_model_evaluation(model, metric)
        return result, registry.get_model(model).name
    registry.record(version.ref, result.metrics(split), source="eval")
    return result, version.ref


def run_two_pass_evaluation(registry: Registry, task_name: str, base: str, strategy: str, pool: list[str], *,
                            split: str = "test", limit: int | None = None, backend: str = "hf",
                            data_dir: str | None = None, batch_size: int = 16, device: str | None = None,
                            dtype: str = "float32"):
    """Evaluate ``base`` on a task with each example answered by the expert a first pass picks; recorded
    as a base-model evaluation whose source names the strategy. Returns (EvalResult, TwoPassResult)."""
    from t2reg.adaptation.dispatch import evaluate_two_pass, plan_routing

    task = get_task(task_name)
    examples = task.examples(split, resolve_data_dir(data_dir))
    if limit is not None:
        if limit < 1:
            raise InvalidInputError("--limit must be at least 1")
        examples = examples[:limit]
    routing = plan_routing(registry, base, strategy, pool)
    engine = open_backend(backend, weights_dir(registry, base), device=device, dtype=dtype, batch_size=batch_size)
    try:
        result, routed = evaluate_two_pass(engine, registry, routing, task, examples)
    finally:
        engine.close()
    result.split = split
    source = f"two-pass:{routing.strategy}"
    registry.record_model_evaluation(base, Metric(task.name, task.metric, result.score, split, result.n), source=source)
    return result, routed
