"""Few-shot adaptation: search over mixtures of a pool of native and transferred experts.

Experts in the pool that live on another base model are transferred to the
target first (reusing an earlier identical transfer). The k shots drive the
search; the reported score is on held-out test examples that exclude them,
beside the base model's score on the same examples. The best mixture is
published as an ``adapted`` expert with a lineage row to every component.

:func:`adapt` is resumable: it hands every completed generation to
``checkpoint`` as plain data and, given that data back as ``state``, continues
from there to the same result an uninterrupted run reaches. The job runner
(:mod:`t2reg.adaptation.jobs`) stores those checkpoints in the registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from t2reg.adaptation.backends import backend_names, open_backend
from t2reg.adaptation.datasets import data_dir as resolve_data_dir
from t2reg.adaptation.evaluate import EvalResult, evaluate
from t2reg.adaptation.mixture_scoring import POPULATION_EVAL_MODES, MixtureScorer
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.search import FLOOR, SearchConfig, SearchState, get_optimizer, optimizer_names
from t2reg.adaptation.tasks import get_task
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Expert, ExpertMeta
from t2reg.registry import ExpertVersion, Registry
from t2reg.transfer.publishing import transfer_version

Checkpoint = Callable[[dict[str, Any], "dict[str, Any] | None"], None]


@dataclass(frozen=True)
class AdaptSpec:
    """Everything that defines an adaptation run; plain data, stored as the job's spec."""

    model: str
    task: str
    pool: tuple[str, ...]
    shots: int = 10
    heldout: int = 100
    per_matrix: bool = False
    normalize: bool = False
    optimizer: str = "cem"
    population: int = 32
    elite: float = 0.2
    iterations: int = 50
    init_std: float = 0.5
    patience: int | None = None
    tolerance: float = 0.0
    seed: int = 0
    backend: str = "hf"
    population_eval: str = "auto"
    batch_size: int = 16
    data_dir: str | None = None
    name: str | None = None

    def search_config(self) -> SearchConfig:
        return SearchConfig(population=self.population, elite_fraction=self.elite, init_std=self.init_std,
                            iterations=self.iterations, seed=self.seed, patience=self.patience,
                            tolerance=self.tolerance)

    def validate(self) -> None:
        """Refuse bad settings before anything runs (so a detached job fails now, not later)."""
        get_task(self.task)
        get_optimizer(self.optimizer, self.search_config())
        if not self.pool:
            raise InvalidInputError("the pool is empty: pass --pool FILTER at least once")
        if self.shots < 1 or self.heldout < 1 or self.batch_size < 1:
            raise InvalidInputError("--shots, --heldout and --batch-size must be positive")
        if self.backend not in backend_names():
            raise InvalidInputError(f"unknown backend {self.backend!r}; choose from {', '.join(backend_names())}")
        if self.population_eval not in POPULATION_EVAL_MODES:
            raise InvalidInputError(f"--population-eval must be one of {', '.join(POPULATION_EVAL_MODES)}")
        if self.optimizer not in optimizer_names():  # pragma: no cover - get_optimizer refused it already
            raise InvalidInputError(f"unknown optimizer {self.optimizer!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "pool": list(self.pool)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdaptSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(f"unknown adaptation settings: {', '.join(sorted(unknown))}")
        return cls(**{**data, "pool": tuple(data.get("pool", ()))})


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
    engine = open_backend(spec.backend, weights_dir(registry, spec.model), batch_size=spec.batch_size)
    try:
        scorer = MixtureScorer(engine, task, load_spectra(spec.model, registry), vectors, rules.pop(), shape,
                               normalize=spec.normalize, mode=saved.get("population_eval", spec.population_eval))

        def on_state(search: SearchState) -> None:
            saved.update(search=search.to_dict(), population_eval=scorer.mode)
            checkpoint(saved, search.history[-1])
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
        base = evaluate(engine, task, test_examples)
    finally:
        engine.close()
    version = _publish(registry, spec, members, scorer.mixture(best), best, held, scorer.rule, job_id)
    for metric in base.metrics("test"):
        registry.record_model_evaluation(spec.model, metric, source="adapt-base")
    return AdaptResult(version, [v.ref for v in members], best.tolist(), spec.shots, best_shot, held, base,
                       scorer.mode, search)


def _publish(registry: Registry, spec: AdaptSpec, members: list[ExpertVersion], mixed, best: np.ndarray,
             held: EvalResult, rule: str, job_id: int | None) -> ExpertVersion:
    if job_id is not None:  # a resumed job that already published must not publish twice
        done = registry.list(where=f"tag.job={job_id}", all_versions=True)
        if done:
            return done[0]
    task = get_task(spec.task)
    info = registry.get_model(spec.model)
    meta = ExpertMeta(base_model=info.name, architecture=info.architecture, base_model_revision=info.revision,
                      renormalize=rule, task=task.name,
                      provenance={"source": "adapted", "method": spec.optimizer, "shots": spec.shots,
                                  "seed": spec.seed, "per_matrix": spec.per_matrix, "normalize": spec.normalize,
                                  "components": [v.ref for v in members]})
    weights = best if best.ndim == 1 else best.mean(axis=1)
    lineage = [(v.ref, "mixture_component", float(w), {"alpha": best[i].tolist() if spec.per_matrix else float(best[i])})
               for i, (v, w) in enumerate(zip(members, weights))]
    tags = {"shots": str(spec.shots), **({"job": str(job_id)} if job_id is not None else {})}
    return registry.publish(Expert({n: v.numpy() for n, v in mixed.items()}, meta), model=spec.model, task=task.name,
                            name=spec.name or f"{task.name}-{info.handle}-adapted",
                            metrics=held.metrics("test"),
                            lineage=lineage, tags=tags)
