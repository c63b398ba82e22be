"""Few-shot adaptation: CEM over mixtures of a pool of native and transferred experts.

Experts in the pool that live on another base model are transferred to the
target first (reusing an earlier identical transfer). The k shots drive the
search; the reported score is on held-out test examples that exclude them,
beside the base model's score on the same examples. The best mixture is
published as an ``adapted`` expert with a lineage row to every component.

This is the synchronous core; running it as a queued, resumable job is the
job runner's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.cem import CEMConfig, CEMState, search
from t2reg.adaptation.datasets import data_dir as resolve_data_dir
from t2reg.adaptation.evaluate import EvalResult, evaluate
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.patch import mix
from t2reg.adaptation.tasks import get_task
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Expert, ExpertMeta, Metric
from t2reg.registry import ExpertVersion, Registry
from t2reg.transfer.publishing import transfer_version


@dataclass
class AdaptResult:
    version: ExpertVersion
    components: list[str]
    alpha: list[Any]
    shots: int
    heldout: EvalResult
    base: EvalResult
    state: CEMState = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"published": self.version.ref, "components": self.components, "alpha": self.alpha,
                "shots": self.shots, "best_shot_score": self.state.best_score, "iterations": self.state.iteration,
                "heldout": self.heldout.to_dict(), "base": self.base.to_dict()}


def gather_pool(registry: Registry, model: str, specs: Sequence[str]) -> list[ExpertVersion]:
    """The pool's versions, each on ``model`` (foreign experts transferred first)."""
    target = registry.get_model(model).name
    members = []
    for version in registry.pool(specs):
        members.append(version if version.model == target else transfer_version(registry, version.ref, model).version)
    unique = {v.ref: v for v in members}
    if not unique:
        raise InvalidInputError("the pool is empty")
    return list(unique.values())


def adapt(
    registry: Registry,
    model: str,
    task_name: str,
    pool: Sequence[str],
    *,
    shots: int = 10,
    heldout: int = 100,
    config: CEMConfig = CEMConfig(),
    per_matrix: bool = False,
    backend: str = "hf",
    data_dir: str | None = None,
    batch_size: int = 16,
    name: str | None = None,
    on_generation: Callable[[CEMState], None] | None = None,
) -> AdaptResult:
    task = get_task(task_name)
    root = resolve_data_dir(data_dir)
    shot_examples = task.shots(shots, config.seed, root)
    test_examples = task.examples("test", root)[:heldout]
    members = gather_pool(registry, model, pool)
    experts = [registry.read_expert(v.ref) for v in members]
    renormalize = {e.meta.renormalize for e in experts}
    if len(renormalize) != 1:
        raise InvalidInputError("the pool mixes renormalisation rules (nuclear and none); mix one kind at a time")
    vectors = [e.vectors for e in experts]
    names = sorted(set().union(*vectors))
    k = len(vectors)
    shape = (k, len(names)) if per_matrix else (k,)
    spectra = load_spectra(model, registry)
    engine = open_backend(backend, weights_dir(registry, model), batch_size=batch_size)
    rule = renormalize.pop()
    try:
        def score(alpha: np.ndarray, examples) -> EvalResult:
            with engine.patched(spectra, mix(vectors, alpha.reshape(shape)), rule):
                return evaluate(engine, task, examples)

        def objective(population: np.ndarray) -> list[tuple[float, float]]:
            return [_shot_score(score, member, shot_examples) for member in population]

        state = search(objective, int(np.prod(shape)), config, on_generation=on_generation)
        if state.best_score[0] == float("-inf"):
            raise InvalidInputError("every mixture CEM tried zeroed some matrix; widen the pool or use per-expert alpha")
        best = np.asarray(state.best_alpha).reshape(shape)
        held = score(best, test_examples)
        base = evaluate(engine, task, test_examples)
    finally:
        engine.close()
    mixed = {n: v.numpy() for n, v in mix(vectors, best).items()}
    info = registry.get_model(model)
    meta = ExpertMeta(base_model=info.name, architecture=info.architecture, base_model_revision=info.revision,
                      renormalize=rule, task=task.name,
                      provenance={"source": "adapted", "method": "cem", "shots": shots, "seed": config.seed,
                                  "per_matrix": per_matrix, "components": [v.ref for v in members]})
    weights = best if best.ndim == 1 else best.mean(axis=1)
    lineage = [(v.ref, "mixture_component", float(w),
                {"alpha": best[i].tolist() if per_matrix else float(best[i])}) for i, (v, w) in enumerate(zip(members, weights))]
    metric = Metric(task.name, task.metric, held.score, "test", held.n)
    version = registry.publish(Expert(mixed, meta), model=model, task=task.name,
                               name=name or f"{task.name}-{info.handle}-adapted", metrics=[metric],
                               lineage=lineage, tags={"shots": str(shots)})
    registry.record_model_evaluation(model, Metric(task.name, task.metric, base.score, "test", base.n), source="adapt-base")
    return AdaptResult(version, [v.ref for v in members], best.tolist(), shots, held, base, state)


def _shot_score(score, member: np.ndarray, examples) -> tuple[float, float]:
    """(accuracy, mean log-likelihood of the right answers); a mixture that zeroes a matrix ranks last."""
    try:
        result = score(member, examples)
    except InvalidInputError:
        return float("-inf"), float("-inf")
    return result.score, result.mean_correct_logprob if result.mean_correct_logprob is not None else 0.0
