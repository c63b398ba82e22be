"""Few-shot adaptation: search over mixtures of a pool of native and transferred experts.

Experts in the pool that live on another base model are transferred to the
target first (reusing an earlier identical transfer). The k shots drive the
search; the reported score is on held-out test examples that exclude them,
beside the base model's score on the same examples. The best mixture is
published as an ``adapted`` expert with a lineage row to every component.

:func:`adapt` is resumable: it hands every completed generation to
``checkpoint`` as plain data and, given that data back as ``state``, continues
from there to the same result an uninterrupted run reaches. The job runner
(:mod:`t2reg.adaptation.jobs.runner`) stores those checkpoints in the registry.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from t2reg.adaptation.backends import open_for
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import evaluate
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.search.base import FLOOR, SearchState, get_optimizer
from t2reg.adaptation.search.objective import MixtureScorer
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.adaptation.tasks import Example, Task, get_task
from t2reg.errors import InvalidInputError
from t2reg.registry import ExpertVersion, Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.entities import Lineage
from t2reg.specs import Checkpoint
from t2reg.transfer.publishing import transfer_version
from t2reg.vocabulary import Relation, Source


@dataclass
class AdaptResult:
    version: ExpertVersion
    components: list[str]
    alpha: list[Any]
    shots: int
    best_shot: EvalResult
    heldout: EvalResult
    base: EvalResult
    population_eval: str
    state: SearchState = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"published": self.version.ref, "components": self.components, "alpha": self.alpha,
                "shots": self.shots, "shot_score": self.best_shot.score, "best_score": self.state.best_score,
                "iterations": self.state.iteration, "evaluations": self.state.evaluations,
                "population_eval": self.population_eval,
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


def adapt(registry: Registry, spec: AdaptSpec, *, state: dict[str, Any] | None = None,
          checkpoint: Checkpoint | None = None, on_generation: Callable[[SearchState], None] | None = None,
          job_id: int | None = None) -> AdaptResult:
    """Run (or continue, from ``state``) an adaptation and publish its result."""
    spec.validate()
    task = get_task(spec.task)
    root = resolve_data_dir(spec.data_dir)
    shot_examples = task.shots(spec.shots, spec.seed, root)
    test_examples = task.examples("test", root)[: spec.heldout]
    saved = dict(state or {})
    checkpoint = checkpoint or (lambda _state, _event: None)
    if "components" not in saved:  # fix the pool once: experts published later must not change a resumed job
        saved["components"] = [v.ref for v in gather_pool(registry, spec.model, spec.pool)]
        checkpoint(saved, None)
    members = [registry.get(ref) for ref in saved["components"]]
    experts = [registry.read_expert(v.ref) for v in members]
    rules = {e.meta.renormalize for e in experts}
    if len(rules) != 1:
        raise InvalidInputError("the pool mixes renormalisation rules (nuclear and none); mix one kind at a time")
    vectors = [e.vectors for e in experts]
    n_matrices = len(set().union(*vectors))
    shape = (len(vectors), n_matrices) if spec.per_matrix else (len(vectors),)
    # Every coordinate starts at 1/K: the uniform mixture, per vector or per matrix column.
    optimizer = get_optimizer(spec.optimizer, dataclasses.replace(spec.search_config(), start=1.0 / len(vectors)))
    mode = saved.get("population_eval", spec.population_eval)
    with _scoring(registry, spec, task, vectors, rules.pop(), shape, mode) as (scorer, evaluate_base):

        def on_state(search: SearchState) -> None:
            saved.update(search=search.to_dict(), population_eval=scorer.mode)
            event = search.history[-1]
            if spec.replicas:  # per-replica throughput rides with the generation's event, not in the search state
                event = {**event, "replicas": scorer.generation_report()}
            checkpoint(saved, event)
            if on_generation:
                on_generation(search)

        resumed = SearchState.from_dict(saved["search"]) if "search" in saved else None
        search = optimizer.run(lambda population: scorer.objective(population, shot_examples), int(np.prod(shape)),
                               state=resumed, on_generation=on_state)
        if search.best_score[0] <= FLOOR:
            raise InvalidInputError("every mixture tried zeroed some matrix; widen the pool or use per-expert alpha")
        best = scorer.alpha(np.asarray(search.best_alpha))
        best_shot = scorer.score(best, shot_examples)  # the best member, re-evaluated on the exact path
        held = scorer.score(best, test_examples)
        base = evaluate_base(test_examples)
    version = _publish(registry, spec, members, scorer.mixture(best), best, held, scorer.rule, job_id)
    for metric in base.metrics("test"):
        registry.record_model_evaluation(spec.model, metric, source="adapt-base")
    return AdaptResult(version, [v.ref for v in members], best.tolist(), spec.shots, best_shot, held, base,
                       scorer.mode, search)


@contextmanager
def _scoring(registry: Registry, spec: AdaptSpec, task: Task, vectors: list[dict[str, Any]], rule: str,
             shape: tuple[int, ...], mode: str) -> Iterator[tuple[Any, Callable[[Sequence[Example]], EvalResult]]]:
    """The search's scorer and the base model's evaluation: in this process, or over Ray replicas
    (``spec.replicas``), with the same scores either way."""
    if spec.replicas:
        from t2reg.adaptation.distributed.scorer import open_replica_scorer  # Ray is loaded only when asked for

        with open_replica_scorer(registry, spec, task, vectors, rule, shape, mode) as scorer:
            yield scorer, scorer.evaluate
        return
    with open_for(registry, spec.model, spec.backend, batch_size=spec.batch_size) as engine:
        scorer = MixtureScorer(engine, task, load_spectra(spec.model, registry), vectors, rule, shape,
                               normalize=spec.normalize, mode=mode)
        yield scorer, lambda examples: evaluate(engine, task, examples)


def _publish(registry: Registry, spec: AdaptSpec, members: list[ExpertVersion], mixed, best: np.ndarray,
             held: EvalResult, rule: str, job_id: int | None) -> ExpertVersion:
    weights = best if best.ndim == 1 else best.mean(axis=1)
    lineage = tuple(
        Lineage(v.ref, Relation.MIXTURE_COMPONENT, float(w),
                {"alpha": best[i].tolist() if spec.per_matrix else float(best[i])})
        for i, (v, w) in enumerate(zip(members, weights)))
    provenance = {"method": spec.optimizer, "shots": spec.shots, "seed": spec.seed, "per_matrix": spec.per_matrix,
                  "normalize": spec.normalize, "components": [v.ref for v in members]}
    return registry.publish_derived(DerivedExpert(
        {n: v.numpy() for n, v in mixed.items()}, model=spec.model, task=spec.task, source=Source.ADAPTED,
        name=spec.name or f"{spec.task}-{registry.get_model(spec.model).handle}-adapted", renormalize=rule,
        provenance=provenance, metrics=tuple(held.metrics("test")), lineage=lineage, tags={"shots": str(spec.shots)},
        job_id=job_id))
