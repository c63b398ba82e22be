"""The transfer report: what was mapped from where, what was defaulted, and how alike the spectra are."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable


@dataclass
class RoleCoverage:
    role: str
    how: str
    target_matrices: int
    mapped: int


@dataclass
class LayerMapping:
    target_layer: int
    source_position: float
    sources: list[tuple[int, float]]


@dataclass
class TransferReport:
    source_model: str
    target_model: str
    layer_align: str
    rank_align: str
    baseline: str
    seed: int | None
    roles: list[RoleCoverage] = field(default_factory=list)
    layers: list[LayerMapping] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    similarity: list[dict[str, Any]] = field(default_factory=list)
    rank_profile: dict[str, Any] = field(default_factory=dict)  # see t2reg.transfer.diagnostics

    @property
    def defaulted_roles(self) -> list[str]:
        return [r.role for r in self.roles if r.how == "defaulted to 1"]

    def options(self) -> dict[str, Any]:
        """What identifies this transfer: recorded on the lineage row."""
        return {"method": "canonical-order", "layer_align": self.layer_align, "rank_align": self.rank_align,
                "baseline": self.baseline, "seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["defaulted_roles"] = self.defaulted_roles
        return data

    def lines(self) -> Iterable[str]:
        """A readable rendering for the terminal."""
        yield f"{self.source_model} -> {self.target_model}: layers {self.layer_align}, rank {self.rank_align}, " \
              f"baseline {self.baseline}" + (f" (seed {self.seed})" if self.seed is not None else "")
        yield "ROLE     FROM              MATRICES"
        for r in self.roles:
            yield f"{r.role:<8} {r.how:<17} {r.mapped}/{r.target_matrices}"
        shown = ", ".join(f"{m.target_layer}<-{m.source_position:g}" for m in self.layers[:12])
        more = f", ... ({len(self.layers)} layers)" if len(self.layers) > 12 else ""
        yield f"layers (target<-source position): {shown}{more}"
        if self.similarity:
            values = [s["similarity"] for s in self.similarity]
            yield f"subspace similarity (top-{self.similarity[0]['k']} left singular vectors): " \
                  f"mean {sum(values) / len(values):.3f}, min {min(values):.3f}, max {max(values):.3f} " \
                  f"over {len(values)} matrix pairs"
        if self.rank_profile:
            p = self.rank_profile
            yield (f"rank profile of the source (median over {p['matrices']} vectors): |Spearman rho| "
                   f"{p['spearman']:.3f}, smooth-fit R^2 {p['smooth_r2']:.3f}, {p['flat']} flat")
        for note in self.notes:
            yield f"note: {note}"
