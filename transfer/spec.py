"""What defines one transfer run (the ``transfer`` job kind's spec)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from t2reg.errors import InvalidInputError
from t2reg.specs import JobSpec, positive
from t2reg.transfer.alignment import LAYER_ALIGNMENTS, RANK_ALIGNMENTS
from t2reg.transfer.core import BASELINES
from t2reg.vocabulary import TransferMethod

if TYPE_CHECKING:
    from t2reg.registry import Registry

# The settings each data-driven method reads; giving one to another method is refused, not ignored.
PROJECTION_ONLY = ("ridge", "bound")
DISTILL_ONLY = ("beta", "iterations", "batch_size", "lr", "kl", "validation", "eval_every")
DATA_DRIVEN = ("texts", "texts_file", "n_texts")


@dataclass(frozen=True)
class TransferSpec(JobSpec):
    """Carry one expert (``ref``) or every latest expert of a model (``source_model``) to ``target``.

    ``method`` rank (the default) maps z along canonical singular-value order; projection and distill learn
    the correspondence from unlabeled ``texts`` run through both base models. ``baseline`` shuffled is each
    method's control: rank permutes each vector, projection fits its map on mismatched positions, distill
    shuffles the teacher's per-question shifts across questions.
    """

    kind: ClassVar[str] = "transfer"

    target: str
    ref: str | None = None
    source_model: str | None = None
    task: str | None = None  # with source_model: only experts for this task
    method: str = "rank"
    layer_align: str = "relative"
    rank_align: str = "quantile"
    baseline: str = "none"
    seed: int = 0
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
    batch_size: int = 16
    lr: float = 0.01
    kl: float = 0.1
    validation: int = 200  # held-out stems scored by agreement with the teacher
    eval_every: int = 5  # iterations between those scores (each costs a pass over the held-out stems)
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
        for option, value, choices in (("method", self.method, TransferMethod.values()),
                                       ("layer_align", self.layer_align, LAYER_ALIGNMENTS),
                                       ("rank_align", self.rank_align, RANK_ALIGNMENTS),
                                       ("baseline", self.baseline, BASELINES)):
            if value not in choices:
                raise InvalidInputError(f"unknown {{{option}}} {value!r}; choose from {', '.join(choices)}",
                                        options=[option])
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
            positive(self, "iterations", "batch_size", "validation", "eval_every")
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

    def options(self) -> dict[str, Any]:
        """The mapping settings, as the library's rank transfer functions take them."""
        return {"layer_align": self.layer_align, "rank_align": self.rank_align, "baseline": self.baseline,
                "seed": self.seed, "dry_run": self.dry_run}
