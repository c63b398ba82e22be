"""What defines one evaluation run (the ``eval`` job kind's spec) and what it records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from t2reg.errors import InvalidInputError
from t2reg.records import JobRecord, ScoreRecord
from t2reg.specs import JobRun, JobSpec, positive

if TYPE_CHECKING:
    from t2reg.registry import Registry

MODES = ("auto", "cloze", "letter", "generate")  # auto: the task's default; "choice" is read as letter
# What a model's weights and activations are stored in. Output projection and log-softmax stay float32
# (HFBackend); a score's dtype is part of its protocol. bench/README.md: bfloat16 against float32 here.
DTYPES = ("float32", "bfloat16", "float16")


def check_dtype(value: str) -> None:
    if value not in DTYPES:
        raise InvalidInputError(f"unknown {{dtype}} {value!r}; choose from {', '.join(DTYPES)}", options=["dtype"])


def validate_scoring(spec: Any) -> None:
    """What the eval and adapt specs share, checked one way: the task exists, the backend and dtype are known,
    the Ray settings hang together (``spec`` has ``task``, ``backend``, ``dtype`` and the replica fields)."""
    # Registries are imported here, not at the top: this module stays light for the CLI.
    from t2reg.adaptation.backends import check_backend
    from t2reg.adaptation.distributed.settings import check_replica_fields
    from t2reg.adaptation.tasks import get_task

    get_task(spec.task)
    check_dtype(spec.dtype)
    check_backend(spec.backend)
    check_replica_fields(spec)


def check_scoring(spec: Any) -> None:
    """What only this machine can tell about the shared part, before a job is queued: a code task's sandbox
    isolation works here, and a ``--ray`` address answers (both fail now, not on a worker)."""
    from t2reg.adaptation.distributed.settings import check_cluster
    from t2reg.adaptation.tasks import get_task

    get_task(spec.task).ready()
    check_cluster(spec)


@dataclass(frozen=True)
class EvalRecord(JobRecord):
    """What was scored (an expert ref or a model name) and its score; stored flat, the score's fields beside
    ``subject`` (and ``replicas``: per-replica throughput, when it ran on Ray replicas)."""

    subject: str
    score: ScoreRecord
    replicas: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, **self.score.to_dict(),
                **({"replicas": self.replicas} if self.replicas is not None else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalRecord:
        score = {k: v for k, v in data.items() if k not in ("subject", "replicas")}
        return cls(data["subject"], ScoreRecord.from_dict(score), data.get("replicas"))


@dataclass(frozen=True)
class EvalSpec(JobSpec):
    """Score an expert (``ref``) or a base model alone (``base``) on ``task``."""

    kind: ClassVar[str] = "eval"
    record: ClassVar[type[JobRecord]] = EvalRecord

    task: str
    ref: str | None = None
    base: str | None = None
    split: str = "test"
    limit: int | None = None  # a seeded random sample of this many questions (None: the whole split)
    seed: int = 0  # the sample's seed
    backend: str = "hf"
    mode: str = "auto"
    data_dir: str | None = None
    batch_size: int = 16
    device: str | None = None
    dtype: str = "float32"
    max_new_tokens: int | None = None
    permute: int = 1  # letter mode: score under this many cyclic rotations of the options
    # Scale-out on Ray (t2reg.adaptation.distributed.settings): None runs in this process.
    replicas: int | None = None
    ray_address: str | None = None
    threads: int | None = None

    def run(self, job: JobRun) -> EvalRecord:
        from t2reg.adaptation.evaluation.runs import run_evaluation

        return run_evaluation(job.registry, self).record()

    def validate(self) -> None:
        if (self.ref is None) == (self.base is None):
            raise InvalidInputError("evaluate an expert ({ref}) or a base model ({base}): one of them",
                                    options=["ref", "base"])
        self.validate_questions()

    def validate_questions(self) -> None:
        """Everything but the subject: which questions, scored how, on what."""
        from t2reg.adaptation.tasks import SPLITS

        validate_scoring(self)
        if self.split not in SPLITS:
            raise InvalidInputError(f"unknown {{split}} {self.split!r}; choose from {', '.join(SPLITS)}",
                                    options=["split"])
        positive(self, "batch_size", "permute", *(["limit"] if self.limit is not None else []),
                 *(["max_new_tokens"] if self.max_new_tokens is not None else []))
        if self.mode not in MODES + ("choice",):
            raise InvalidInputError(f"unknown {{mode}} {self.mode!r}; choose from {', '.join(MODES)}", options=["mode"])

    def check(self, registry: Registry) -> None:
        self.validate()
        check_scoring(self)
        registry.get(self.ref) if self.ref else registry.get_model(self.base)
