"""Mixing experts: z' = sum_k alpha_k z_k, per vector or per matrix."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from t2reg.errors import InvalidInputError

Vectors = Mapping[str, "torch.Tensor | np.ndarray"]


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
