"""What defines one few-shot adaptation run (the ``adapt`` job kind's spec) and what it records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from t2reg.errors import InvalidInputError
from t2reg.records import JobRecord, PairedRecord, ScoreRecord
from t2reg.specs import JobRun, JobSpec, positive
from t2reg.enums import MixSpace

if TYPE_CHECKING:
    from t2reg.adaptation.search.base import SearchConfig
    from t2reg.registry import Registry

POPULATION_EVAL_MODES = ("auto", "batched", "sequential")
MIX_SPACES = MixSpace.values()


@dataclass(frozen=True)
class AdaptRecord(JobRecord):
    """The published mixture, how the search went, and its held-out score beside the base model's."""

    published: str
    components: list[str]
    alpha: list[Any]
    shots: int
    shot_score: float  # the best mixture's score on the shots (what the search maximised)
    best_score: list[float] | None  # the search's lexicographic best (score, then tie-breakers)
    iterations: int  # generations run
    evaluations: int  # candidates scored
    population_eval: str
    heldout: ScoreRecord
    base: ScoreRecord
    strength: float | None = None  # the strength space's s
    paired: PairedRecord | None = None  # held-out: the adapted expert against the base model


@dataclass(frozen=True)
class AdaptSpec(JobSpec):
    """A search over mixtures of the ``pool``'s experts for ``model`` on ``task``, driven by ``shots`` examples."""

    kind: ClassVar[str] = "adapt"
    record: ClassVar[type[JobRecord]] = AdaptRecord

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
    mix_space: MixSpace = MixSpace.Z  # see t2reg.adaptation.patching.mixing
    backend: str = "hf"
    population_eval: str = "auto"
    batch_size: int = 16
    dtype: str = "float32"  # the model's weights and activations (the search's and the held-out scores')
    data_dir: str | None = None
    name: str | None = None
    # Scale-out on Ray (t2reg.adaptation.distributed.settings): None runs in this process.
    replicas: int | None = None
    ray_address: str | None = None
    threads: int | None = None

    def search_config(self) -> SearchConfig:
        from t2reg.adaptation.search.base import SearchConfig

        return SearchConfig(population=self.population, elite_fraction=self.elite, init_std=self.init_std,
                            iterations=self.iterations, seed=self.seed, patience=self.patience,
                            tolerance=self.tolerance)

    def run(self, job: JobRun) -> AdaptRecord:
        from t2reg.adaptation.search.adapt import adapt

        return adapt(job.registry, self, state=job.state, checkpoint=job.checkpoint, job_id=job.job_id,
                     progress=job.progress).record()

    def validate(self) -> None:
        # Registries are imported here, not at the top: this module stays light for the CLI.
        from t2reg.adaptation.evaluation.spec import validate_scoring
        from t2reg.adaptation.search.base import check_optimizer

        validate_scoring(self)
        if not self.pool:
            raise InvalidInputError("the pool is empty: give at least one filter ({pool})", options=["pool"])
        positive(self, "shots", "heldout", "batch_size", "iterations")
        if self.population < 2:
            raise InvalidInputError("{population} must be at least 2", options=["population"])
        if not 0 < self.elite <= 1:
            raise InvalidInputError("{elite} must lie in (0, 1]", options=["elite"])
        if self.init_std <= 0 or self.tolerance < 0:
            raise InvalidInputError("{init_std} must be positive and {tolerance} not negative",
                                    options=["init_std", "tolerance"])
        if self.patience is not None and self.patience < 1:
            raise InvalidInputError("{patience} must be at least 1", options=["patience"])
        if self.population_eval not in POPULATION_EVAL_MODES:
            raise InvalidInputError(f"{{population_eval}} must be one of {', '.join(POPULATION_EVAL_MODES)}",
                                    options=["population_eval"])
        if self.mix_space not in MIX_SPACES:
            raise InvalidInputError(f"{{mix_space}} must be one of {', '.join(MIX_SPACES)}", options=["mix_space"])
        check_optimizer(self.optimizer)

    def check(self, registry: Registry) -> None:
        from t2reg.adaptation.evaluation.spec import check_scoring

        self.validate()
        check_scoring(self)
        registry.get_model(self.model)
        registry.pool(self.pool)  # names a filter that matches nothing now, not when a worker gets to it
