"""Mixing experts, per vector (alpha: K) or per matrix (alpha: K x M), in one of three spaces.

* ``z``: z' = sum_k alpha_k z_k. After nuclear renormalisation such a mixture
  is a convex combination of the normalised experts: it can shrink an expert
  toward another, never strengthen it.
* ``logits``: p_k = logit(z_k), z' = sigmoid(sum_k alpha_k p_k), as the
  released reference code mixes (its experts are z = sigmoid(p)); with alpha in
  [0, 1] the mixed logit reaches K times an expert's, so it extrapolates.
* ``strength``: the ``z`` mixture, renormalised, then its distance from the
  base weights scaled by s in [0, STRENGTH_MAX]: z'' = 1 + s * (z' c - 1), applied
  without renormalisation; s > 1 strengthens, s = 0 is the base model.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from t2reg.errors import InvalidInputError
from t2reg.enums import MixSpace

Vectors = Mapping[str, "torch.Tensor | np.ndarray"]
MIX_SPACES = MixSpace.values()
STRENGTH_MAX = 3.0
_EDGE = 1e-3  # logit(z) is taken of z clamped into [EDGE, 1 - EDGE]


def mix(experts: Sequence[Vectors], alpha: "torch.Tensor | np.ndarray | Sequence[float]") -> dict[str, torch.Tensor]:
    """z' = sum_k alpha_k z_k per vector (alpha: K) or per matrix (alpha: K x M).

    Matrices are the union of the experts' keys in sorted order (that is M's
    order); an expert without a matrix contributes z = 1 there.
    """
    alpha = torch.as_tensor(np.asarray(alpha, dtype=np.float32))
    names = sorted(set().union(*(e.keys() for e in experts)))
    if alpha.shape[0] != len(experts) or alpha.dim() not in (1, 2) or (alpha.dim() == 2 and alpha.shape[1] != len(names)):
        raise InvalidInputError(
            f"alpha has shape {tuple(alpha.shape)}; expected ({len(experts)},) or ({len(experts)}, {len(names)})"
        )
    mixed = {}
    for m, name in enumerate(names):
        weights = alpha if alpha.dim() == 1 else alpha[:, m]
        rank = next(len(e[name]) for e in experts if name in e)
        stack = torch.stack([torch.as_tensor(e[name], dtype=torch.float32) if name in e else torch.ones(rank) for e in experts])
        mixed[name] = weights @ stack
    return mixed


def mix_logits(experts: Sequence[Vectors], alpha: "np.ndarray | Sequence[float]") -> dict[str, torch.Tensor]:
    """z' = sigmoid(sum_k alpha_k logit(z_k)); an expert without a matrix contributes logit 0 there."""
    names = sorted(set().union(*experts))
    rank = {n: len(next(e[n] for e in experts if n in e)) for n in names}
    logits = [{n: torch.logit(torch.as_tensor(e[n], dtype=torch.float32).clamp(_EDGE, 1 - _EDGE)) if n in e
               else torch.zeros(rank[n]) for n in names} for e in experts]
    return {name: torch.sigmoid(vec) for name, vec in mix(logits, alpha).items()}


def strengthen(mixed: Mapping[str, torch.Tensor], sigma: Mapping[str, torch.Tensor], renormalize: str,
               strength: float) -> dict[str, torch.Tensor]:
    """z'' = 1 + s * (z c - 1) per matrix (c the nuclear renormalisation of z, or 1), to apply without
    renormalisation: the mixture's effect on the singular values, scaled by ``strength``."""
    out = {}
    for name, z in mixed.items():
        z = torch.as_tensor(z, dtype=torch.float32)
        s = torch.as_tensor(sigma[name], dtype=torch.float32)
        c = s.sum() / (s * z).sum() if renormalize == "nuclear" else torch.tensor(1.0)
        out[name] = 1 + strength * (z * c - 1)
    return out
