"""What defines one transfer run (the ``transfer`` job kind's spec)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from t2reg.errors import InvalidInputError
from t2reg.specs import JobSpec
from t2reg.transfer.alignment import LAYER_ALIGNMENTS, RANK_ALIGNMENTS
from t2reg.transfer.core import BASELINES

if TYPE_CHECKING:
    from t2reg.registry import Registry


@dataclass(frozen=True)
class TransferSpec(JobSpec):
    """Carry one expert (``ref``) or every latest expert of a model (``source_model``) to ``target``."""

    kind: ClassVar[str] = "transfer"

    target: str
    ref: str | None = None
    source_model: str | None = None
    task: str | None = None  # with source_model: only experts for this task
    layer_align: str = "relative"
    rank_align: str = "quantile"
    baseline: str = "none"
    seed: int = 0
    name: str | None = None  # with ref: the published expert's name
    dry_run: bool = False

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
        for option, value, choices in (("layer_align", self.layer_align, LAYER_ALIGNMENTS),
                                       ("rank_align", self.rank_align, RANK_ALIGNMENTS),
                                       ("baseline", self.baseline, BASELINES)):
            if value not in choices:
                raise InvalidInputError(f"unknown {{{option}}} {value!r}; choose from {', '.join(choices)}",
                                        options=[option])

    def check(self, registry: Registry) -> None:
        self.validate()
        registry.get_model(self.target)
        registry.get(self.ref) if self.ref else registry.get_model(self.source_model)

    def options(self) -> dict[str, Any]:
        """The mapping settings, as the library's transfer functions take them."""
        return {"layer_align": self.layer_align, "rank_align": self.rank_align, "baseline": self.baseline,
                "seed": self.seed, "dry_run": self.dry_run}
