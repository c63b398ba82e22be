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
from t2reg.adaptation.evaluation.compare import base_result
from t2reg.adaptation.evaluation.paired import Comparison, pair
from t2reg.adaptation.evaluation.questions import SAMPLE_SEED, Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import Phases, Progress, measure
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.search.base import FLOOR, SearchState, get_optimizer
from t2reg.adaptation.search.objective import Candidate, MixtureScorer
from t2reg.adaptation.search.spec import AdaptRecord, AdaptSpec
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.adaptation.tasks import Task, get_task
from t2reg.errors import InvalidInputError
from t2reg.registry import ExpertVersion, Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.entities import Lineage
from t2reg.specs import Checkpoint
from t2reg.transfer.publishing import transfer_version
from t2reg.enums import Relation, Source


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
    paired: Comparison | None = None  # held-out: the adapted expert against the base model, question by question
    strength: float | None = None  # the strength space's s

    def record(self) -> AdaptRecord:
        return AdaptRecord(self.version.ref, self.components, self.alpha, self.shots, self.best_shot.score,
                           self.state.best_score, self.state.iteration, self.state.evaluations,
                           self.population_eval, self.heldout.record(), self.base.record(), self.strength,
                           self.paired.record() if self.paired else None)

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_dict()


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
          job_id: int | None = None, progress: Phases | None = None) -> AdaptResult:
    """Run (or continue, from ``state``) an adaptation and publish its result. ``progress`` shows the
    scoring after the last generation (the best mixture on the held-out questions, the base model on them
    unless that is recorded already)."""
    phase = progress or (lambda _label: None)
    spec.validate()
    task = get_task(spec.task)
    root = resolve_data_dir(spec.data_dir)
    shot_examples = task.shots(spec.shots, spec.seed, root)
    heldout = Questions.draw(task, "test", spec.heldout, SAMPLE_SEED, root)
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
    mode = saved.get("population_eval", spec.population_eval)
    with _scoring(registry, spec, task, vectors, rules.pop(), shape, mode) as (scorer, measure_base):
        # Every weight starts at 1/K (the uniform mixture, per vector or per matrix column), strength at 1.
        optimizer = get_optimizer(spec.optimizer, dataclasses.replace(spec.search_config(),
                                                                      start=tuple(scorer.initial_mean())))

        scorer.memo.update(saved.get("scored", {}))  # what the run had scored when it stopped

        def on_state(search: SearchState) -> None:
            saved.update(search=search.to_dict(), population_eval=scorer.mode, scored=scorer.memo)
            event = search.history[-1]
            if spec.replicas:  # per-replica throughput rides with the generation's event, not in the search state
                event = {**event, "replicas": scorer.generation_report()}
            checkpoint(saved, event)
            if on_generation:
                on_generation(search)

        resumed = SearchState.from_dict(saved["search"]) if "search" in saved else None
        search = optimizer.run(lambda population: scorer.objective(population, shot_examples), scorer.dim,
                               state=resumed, on_generation=on_state)
        if search.best_score[0] <= FLOOR:
            raise InvalidInputError("every mixture tried zeroed some matrix; widen the pool or use per-expert alpha")
        best = scorer.candidate(np.asarray(search.best_alpha))
        best_shot = scorer.score(best, shot_examples)  # the exact path's score (reused if the search took it)
        held = scorer.measure(best, heldout, phase("best mixture, held-out"))
        base = base_result(registry, spec.model, heldout, spec.dtype,
                           lambda: measure_base(heldout, phase("base model, held-out")), "adapt-base")
    version = _publish(registry, spec, members, scorer.mixture(best), best, held, scorer.apply_rule, job_id)
    return AdaptResult(version, [v.ref for v in members], best.alpha.tolist(), spec.shots, best_shot, held, base,
                       scorer.mode, search, pair(base.outputs, held.outputs, f"base:{spec.model}", version.ref,
                                             held.protocol), best.strength)


@contextmanager
def _scoring(registry: Registry, spec: AdaptSpec, task: Task, vectors: list[dict[str, Any]], rule: str,
             shape: tuple[int, ...], mode: str
             ) -> Iterator[tuple[Any, Callable[[Questions, Progress | None], EvalResult]]]:
    """The search's scorer and the base model's measurement: in this process, or over Ray replicas
    (``spec.replicas``), with the same scores either way."""
    if spec.replicas:
        from t2reg.adaptation.distributed.scorer import open_replica_scorer  # Ray is loaded only when asked for

        with open_replica_scorer(registry, spec, task, vectors, rule, shape, mode) as scorer:
            yield scorer, scorer.measure_base
        return
    with open_for(registry, spec.model, spec.backend, batch_size=spec.batch_size, dtype=spec.dtype) as backend:
        scorer = MixtureScorer(backend, task, load_spectra(spec.model, registry), vectors, rule, shape,
                               normalize=spec.normalize, mode=mode, space=spec.mix_space)
        yield scorer, lambda questions, progress: measure(backend, questions, progress=progress)


def _publish(registry: Registry, spec: AdaptSpec, members: list[ExpertVersion], mixed, best: Candidate,
             held: EvalResult, rule: str, job_id: int | None) -> ExpertVersion:
    alpha = best.alpha
    weights = alpha if alpha.ndim == 1 else alpha.mean(axis=1)
    space = {"mix_space": spec.mix_space, **({"strength": best.strength} if best.strength is not None else {})}
    lineage = tuple(
        Lineage(v.ref, Relation.MIXTURE_COMPONENT, float(w),
                {"alpha": alpha[i].tolist() if spec.per_matrix else float(alpha[i]), **space})
        for i, (v, w) in enumerate(zip(members, weights)))
    provenance = {"method": spec.optimizer, "shots": spec.shots, "seed": spec.seed, "per_matrix": spec.per_matrix,
                  "normalize": spec.normalize, "components": [v.ref for v in members], **space}
    return registry.publish_derived(DerivedExpert(
        {n: v.numpy() for n, v in mixed.items()}, model=spec.model, task=spec.task, source=Source.ADAPTED,
        name=spec.name or f"{spec.task}-{registry.get_model(spec.model).handle}-adapted", renormalize=rule,
        provenance=provenance, measurements=(held.measurement(),), lineage=lineage, tags={"shots": str(spec.shots)},
        job_id=job_id))
