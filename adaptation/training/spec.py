"""What defines one SVF training run (the ``train`` job kind's spec) and what it records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from t2reg.architectures import MODULE_GROUPS
from t2reg.errors import InvalidInputError
from t2reg.records import JobRecord, PairedRecord, ScoreRecord
from t2reg.specs import JobRun, JobSpec, positive
from t2reg.enums import Word

if TYPE_CHECKING:
    from t2reg.registry import Registry


class Parametrization(Word):
    """What the trained parameters are."""

    LOGITS = "logits"  # z = sigmoid(p) * max_mult, renormalised to keep the nuclear norm
    SCALE = "scale"  # z itself, clamped to [0, max_mult]


class Estimator(Word):
    """How a multiple-choice task's policy gradient is estimated (generation tasks always sample)."""

    EXACT = "exact"  # the gradient of the expected reward over every option: no sampling noise
    REINFORCE = "reinforce"  # one sampled option per question, reward minus baseline


PARAMETRIZATIONS = Parametrization.values()
ESTIMATORS = Estimator.values()


@dataclass(frozen=True)
class TrainRecord(JobRecord):
    """The published expert (its best validation iteration) and its scores beside the base model's."""

    published: str
    iterations: int
    best_iteration: int
    validation: ScoreRecord
    test: ScoreRecord
    base: ScoreRecord
    paired: PairedRecord | None = None  # held-out: the trained expert against the base model


@dataclass(frozen=True)
class TrainSpec(JobSpec):
    """Policy-gradient training of one expert for ``model`` on ``task``."""

    kind: ClassVar[str] = "train"
    record: ClassVar[type[JobRecord]] = TrainRecord
    renamed: ClassVar[dict[str, str]] = {"batch_size": "examples_per_step"}  # batch_size is rows per forward pass

    model: str
    task: str
    iterations: int = 40
    examples_per_step: int = 16  # training examples drawn for each policy-gradient step
    modules: str = "mlp"
    kl: float = 0.1
    lr: float = 0.01  # measured: 16 steps at 0.01 move z enough to lift ARC-Easy (bench/README.md, training)
    param: Parametrization = Parametrization.LOGITS
    init: float = 0.1  # initial logit (param logits)
    init_scale: float = 1.0  # initial z (param scale)
    max_mult: float = 1.0
    clip: float = 1.0
    temperature: float = 1.0
    max_new_tokens: int | None = None
    validation: int = 32  # validation examples scored for checkpoint selection
    eval_every: int = 1
    patience: int | None = None  # validation rounds without a better score before stopping
    heldout: int = 100  # test examples in the report
    sampler: str = "hf"
    estimator: Estimator = Estimator.EXACT  # multiple choice: the exact expected reward over the options, or one sampled option
    device: str | None = None
    dtype: str = "float32"  # the model's weights and activations; z, its gradients and AdamW stay float32
    seed: int = 0
    data_dir: str | None = None
    name: str | None = None

    def run(self, job: JobRun) -> TrainRecord:
        from t2reg.adaptation.training.reinforce import train

        return train(job.registry, self, state=job.state, checkpoint=job.checkpoint, job_id=job.job_id,
                     progress=job.progress).record()

    def validate(self) -> None:
        # Registries are imported here, not at the top: this module stays light for the CLI.
        from t2reg.adaptation.backends import check_backend
        from t2reg.adaptation.evaluation.spec import check_dtype
        from t2reg.adaptation.tasks import get_task

        get_task(self.task)
        check_dtype(self.dtype)
        if self.param not in PARAMETRIZATIONS:
            raise InvalidInputError(f"{{param}} must be one of {', '.join(PARAMETRIZATIONS)}", options=["param"])
        positive(self, "iterations", "examples_per_step", "validation", "heldout", "eval_every")
        if self.lr <= 0 or self.clip <= 0 or self.temperature <= 0 or self.max_mult <= 0:
            raise InvalidInputError("{lr}, {clip}, {temperature} and {max_mult} must be positive",
                                    options=["lr", "clip", "temperature", "max_mult"])
        if self.kl < 0:
            raise InvalidInputError("{kl} must not be negative", options=["kl"])
        check_backend(self.sampler, "sampler")
        if self.patience is not None and self.patience < 1:
            raise InvalidInputError("{patience} must be at least 1 (validation rounds without improvement)",
                                    options=["patience"])
        if self.estimator not in ESTIMATORS:
            raise InvalidInputError(f"{{estimator}} must be one of {', '.join(ESTIMATORS)}", options=["estimator"])
        if self.modules not in MODULE_GROUPS:
            raise InvalidInputError(f"{{modules}} must be one of {', '.join(MODULE_GROUPS)}", options=["modules"])

    def check(self, registry: Registry) -> None:
        self.validate()
        from t2reg.adaptation.tasks import get_task

        get_task(self.task).ready()  # a code task without the sandbox's isolation fails here, not on a worker
        registry.get_model(self.model)
