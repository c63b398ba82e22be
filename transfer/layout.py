"""A model seen as ``(layer, role) -> matrix``, and how a role of one model is
read from the roles of another (directly, split from a fused role, or fused from split ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from t2reg.architectures import MLP_ROLES, MatrixSpec, matrix_specs

# A fused role and the split roles it stands for, in concatenation order.
FUSED = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}
SPLIT_OF = {part: fused for fused, parts in FUSED.items() for part in parts}


@dataclass(frozen=True)
class Layout:
    """The adaptable matrices of one model by canonical position."""

    name: str
    num_layers: int
    matrices: Mapping[tuple[int, str], MatrixSpec]

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> "Layout":
        specs = matrix_specs(config, "all")
        return cls(name, 1 + max(s.layer for s in specs), {(s.layer, s.role): s for s in specs})

    def by_name(self) -> dict[str, MatrixSpec]:
        return {s.name: s for s in self.matrices.values()}


def group_of(role: str) -> str:
    return "mlp" if role in MLP_ROLES else "attn"


@dataclass(frozen=True)
class RoleSource:
    """How a target role is read from the source expert."""

    how: str  # direct | split | fused | default
    parts: tuple[str, ...]  # the source roles used

    def describe(self) -> str:
        if self.how == "direct":
            return "direct"
        if self.how == "split":
            return f"split from {self.parts[0]}"
        if self.how == "fused":
            return f"fused from {','.join(self.parts)}"
        return "defaulted to 1"


def role_source(role: str, available: set[str]) -> RoleSource:
    """Where a target role's vector comes from, given the roles the source expert covers."""
    if role in available:
        return RoleSource("direct", (role,))
    if role in SPLIT_OF and SPLIT_OF[role] in available:
        return RoleSource("split", (SPLIT_OF[role],))
    if role in FUSED and all(p in available for p in FUSED[role]):
        return RoleSource("fused", FUSED[role])
    return RoleSource("default", ())


def read_role(
    source: RoleSource,
    role: str,
    layer: int,
    vectors: Mapping[tuple[int, str], np.ndarray],
    target: Layout,
    target_layer: int,
) -> np.ndarray:
    """The source vector for ``role`` at a source layer, splitting or concatenating along the rank index."""
    if source.how == "direct":
        return vectors[(layer, role)]
    if source.how == "fused":
        return np.concatenate([vectors[(layer, part)] for part in source.parts])
    fused = vectors[(layer, source.parts[0])]
    parts = FUSED[source.parts[0]]
    # Cut the fused vector in proportion to the target's own split ranks.
    ranks = np.array([target.matrices[(target_layer, p)].rank for p in parts], dtype=np.float64)
    bounds = np.round(np.concatenate([[0], np.cumsum(ranks)]) / ranks.sum() * len(fused)).astype(int)
    i = parts.index(role)
    return fused[bounds[i] : max(bounds[i + 1], bounds[i] + 1)]

