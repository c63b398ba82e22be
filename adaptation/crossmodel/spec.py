"""What defines one transfer run (the ``transfer`` job kind's spec) and what it records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from t2reg.errors import InvalidInputError
from t2reg.records import JobRecord
from t2reg.specs import JobRun, JobSpec, positive
from t2reg.transfer.core import RankOptions
from t2reg.enums import Checkpointing, TransferMethod

if TYPE_CHECKING:
    from t2reg.registry import Registry

# The settings each data-driven method reads; giving one to another method is refused, not ignored.
PROJECTION_ONLY = ("ridge", "bound")
DISTILL_ONLY = ("beta", "iterations", "examples_per_step", "lr", "kl", "validation", "eval_every", "line_search",
                "checkpoint_by")
DATA_DRIVEN = ("texts", "texts_file", "n_texts")


@dataclass(frozen=True)
class ExpertTransferRecord(JobRecord):
    """One expert carried: what was published (None for a dry run), or found made before (``reused``),
    and the method's report (its JSON and its lines for the terminal)."""

    source: str
    target_model: str
    published: str | None
    reused: bool
    report: dict[str, Any]
    lines: list[str]

    @classmethod
    def of(cls, result: Any) -> ExpertTransferRecord:
        """The record of a library transfer result (:class:`~t2reg.transfer.publishing.TransferResult`)."""
        return cls(result.source_ref, result.target_model, result.version.ref if result.version else None,
                   result.reused, result.report.to_dict(), list(result.report.lines()))


@dataclass(frozen=True)
class TransferRecord(JobRecord):
    """What a transfer job did: a record per expert carried."""

    transfers: list[ExpertTransferRecord]


@dataclass(frozen=True)
class TransferSpec(JobSpec):
    """Carry one expert (``ref``) or every latest expert of a model (``source_model``) to ``target``.

    ``method`` rank (the default) maps z along canonical singular-value order; projection and distill learn
    the correspondence from unlabeled ``texts`` run through both base models. ``baseline`` shuffled is each
    method's control: rank permutes each vector, projection fits its map on mismatched positions, distill
    shuffles the teacher's per-question shifts across questions.
    """

    kind: ClassVar[str] = "transfer"
    record: ClassVar[type[JobRecord]] = TransferRecord
    renamed: ClassVar[dict[str, str]] = {"batch_size": "examples_per_step"}

    target: str
    ref: str | None = None
    source_model: str | None = None
    task: str | None = None  # with source_model: only experts for this task
    method: TransferMethod = TransferMethod.RANK
    layer_align: str = RankOptions.layer_align
    rank_align: str = RankOptions.rank_align
    baseline: str = RankOptions.baseline
    seed: int = RankOptions.seed
    name: str | None = None  # with ref: the published expert's name
    dry_run: bool = False
    # data-driven methods: the unlabeled texts (default: the expert's task, train split)
    texts: str | None = None  # TASK or TASK:SPLIT
    texts_file: str | None = None
    n_texts: int = 1000
    # projection
    ridge: float | None = None  # relative ridge of the map; None: chosen per matrix on held-out positions
    bound: float = 1.0  # |z - 1| at most this
    # distill
    beta: float = 1.0  # the teacher moves the target by beta times the expert's log-ratio on the source
    iterations: int = 30
    examples_per_step: int = 16  # questions drawn for each distillation step
    lr: float = 0.01
    kl: float = 0.1
    validation: int = 200  # held-out stems scored by agreement with the teacher
    eval_every: int = 5  # iterations between those scores (each costs a pass over the held-out stems)
    line_search: bool = False  # then stretch z - 1 by the factor that follows the teacher best on those stems
    checkpoint_by: Checkpointing = Checkpointing.AGREEMENT  # how those stems choose the checkpoint published
    data_dir: str | None = None

    def validate(self) -> None:
        if (self.ref is None) == (self.source_model is None):
            raise InvalidInputError("transfer an expert ({ref}) or every expert of a model ({source_model}): "
                                    "one of them", options=["ref", "source_model"])
        if self.name and self.source_model:
            raise InvalidInputError("{name} applies to a single expert, not to every expert of a model",
                                    options=["name"])
        if self.task and self.ref:
            raise InvalidInputError("{task} selects among a model's experts; an expert has its own",
                                    options=["task"])
        if self.method not in TransferMethod.values():
            raise InvalidInputError(f"unknown {{method}} {self.method!r}; choose from "
                                    f"{', '.join(TransferMethod.values())}", options=["method"])
        self.options().validate()
        self._validate_method_settings()

    def _validate_method_settings(self) -> None:
        method = TransferMethod(self.method)
        foreign = [n for n in self._changed() if (n in PROJECTION_ONLY and method != TransferMethod.PROJECTION)
                   or (n in DISTILL_ONLY and method != TransferMethod.DISTILL)
                   or (n in DATA_DRIVEN and method == TransferMethod.RANK)
                   or (n in ("layer_align", "rank_align") and method != TransferMethod.RANK)]
        if foreign:
            verb = "does" if len(foreign) == 1 else "do"
            raise InvalidInputError(f"{', '.join('{' + n + '}' for n in foreign)} {verb} not apply to {{method}} "
                                    f"{method}", options=[*foreign, "method"])
        if method == TransferMethod.RANK:
            return
        if self.texts and self.texts_file:
            raise InvalidInputError("give {texts} or {texts_file}, not both", options=["texts", "texts_file"])
        if self.dry_run:
            raise InvalidInputError(f"{{dry_run}} applies to rank transfers; {method} runs the models",
                                    options=["dry_run"])
        positive(self, "n_texts")
        if self.ridge is not None and not self.ridge > 0:
            raise InvalidInputError("{ridge} must be positive", options=["ridge"])
        if not 0 < self.bound <= 10:
            raise InvalidInputError("{bound} must lie in (0, 10]", options=["bound"])
        if method == TransferMethod.DISTILL:
            positive(self, "iterations", "examples_per_step", "validation", "eval_every")
            if self.checkpoint_by not in Checkpointing.values():
                raise InvalidInputError(f"unknown {{checkpoint_by}} {self.checkpoint_by!r}; choose from "
                                        f"{', '.join(Checkpointing.values())}", options=["checkpoint_by"])
            if not (0 < self.beta <= 100 and 0 < self.lr <= 10 and 0 <= self.kl <= 100):
                raise InvalidInputError("{beta} and {lr} must be positive (beta at most 100, lr at most 10), {kl} "
                                        "in [0, 100]", options=["beta", "lr", "kl"])

    def _changed(self) -> list[str]:
        """Settings that differ from their defaults."""
        return [name for name in (*PROJECTION_ONLY, *DISTILL_ONLY, *DATA_DRIVEN, "layer_align", "rank_align")
                if getattr(self, name) != self.default(name)]

    def check(self, registry: Registry) -> None:
        self.validate()
        registry.get_model(self.target)
        registry.get(self.ref) if self.ref else registry.get_model(self.source_model)

    def options(self) -> RankOptions:
        """The mapping settings, as the library's rank transfer takes them."""
        return RankOptions(self.layer_align, self.rank_align, self.baseline, self.seed)

    def run(self, job: JobRun) -> TransferRecord:
        from t2reg.adaptation.crossmodel.publishing import run_transfer

        results = run_transfer(job.registry, self, state=job.state, checkpoint=job.checkpoint)
        return TransferRecord([ExpertTransferRecord.of(r) for r in results])
