"""Controls made from an expert, to tell what in it carries an effect (no models here).

Every transfer result is read beside its controls (bench/science.py part (d)):

* ``strength`` s: z' = 1 + s (z − 1). s = 0 is the base model, s = 1 the expert, s = −1 the sign flip
  (what helps should hurt when flipped), s = 0.5 and 2 the dose response;
* ``random``: per matrix, a random direction with the same ‖z − 1‖ (seeded): the null band an effect of
  that size produces when it points nowhere in particular.

Vectors are taken as they act: an expert with nuclear renormalisation is first turned into the z it
effectively applies (:func:`effective`), so every control is published with ``renormalize = none``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.enums import Word


class ControlKind(Word):
    STRENGTH = "strength"
    RANDOM = "random"


@dataclass(frozen=True)
class Control:
    """Which control: a strength (with ``value``) or a random direction (with ``seed``)."""

    kind: ControlKind
    value: float = 1.0
    seed: int = 0

    def params(self) -> dict:
        if self.kind == ControlKind.STRENGTH:
            return {"control": str(self.kind), "strength": self.value}
        return {"control": str(self.kind), "seed": self.seed}

    def suffix(self) -> str:
        if self.kind == ControlKind.RANDOM:
            return f"random{self.seed}"
        return "signflip" if self.value == -1 else f"strength{self.value:g}".replace(".", "p").replace("-", "m")


def effective(vectors: Mapping[str, np.ndarray], renormalize: str,
              sigmas: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The z an expert effectively applies: z times its nuclear renormalisation Σσ / Σ(σ z) where it has one."""
    if renormalize == "none":
        return {n: np.asarray(z, dtype=np.float64) for n, z in vectors.items()}
    if sigmas is None:
        raise InvalidInputError("a renormalised expert's effective z needs the model's singular values")
    out = {}
    for name, z in vectors.items():
        z, sigma = np.asarray(z, dtype=np.float64), np.asarray(sigmas[name], dtype=np.float64)
        out[name] = z * sigma.sum() / (sigma * z).sum()
    return out


def make(vectors: Mapping[str, np.ndarray], control: Control) -> dict[str, np.ndarray]:
    """The control's vectors from effective ``vectors`` (clipped at 0: a singular value is never negative)."""
    out = {}
    for name, z in vectors.items():
        delta = np.asarray(z, dtype=np.float64) - 1.0
        if control.kind == ControlKind.STRENGTH:
            moved = control.value * delta
        elif control.kind == ControlKind.RANDOM:
            noise = np.random.default_rng(_seed(control.seed, name)).standard_normal(len(delta))
            norm = np.linalg.norm(noise)
            moved = noise * (np.linalg.norm(delta) / norm) if norm > 0 else noise
        else:
            raise InvalidInputError(f"unknown control {control.kind!r}")
        out[name] = np.clip(1.0 + moved, 0.0, None).astype(np.float32)
    return out


def _seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")
