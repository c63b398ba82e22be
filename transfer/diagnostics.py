"""What a transfer can carry: how much of each source vector's variation lies along the rank axis.

A transfer between models of different families maps z by relative rank
position; the only thing it can carry is how z varies with position. If a
vector shows no trend along the rank axis, its ordered transfer and a shuffled
one are draws from the same distribution, and no experiment can tell them
apart. Per matrix this reports:

* the Spearman correlation of z with rank position (a monotone trend);
* the share of z's variance a smooth function of rank explains (R² of a
  leave-one-out moving average over a tenth of the ranks, which catches any
  slow profile and is near 0 on noise);
* the lag-1 autocorrelation (neighbouring ranks alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

FLAT_R2 = 0.05  # below this, a vector's rank profile is noise: ordered and shuffled coincide


@dataclass(frozen=True)
class RankProfile:
    """Summaries over the source expert's vectors (median across matrices)."""

    matrices: int
    spearman: float  # median |Spearman rho| of z with rank position
    smooth_r2: float  # median share of variance explained by a smooth function of rank
    lag1: float  # median lag-1 autocorrelation
    flat: int  # matrices whose smooth R² is below FLAT_R2
    per_matrix: dict[str, tuple[float, float, float]] = field(default_factory=dict, repr=False)

    @property
    def carries_order(self) -> bool:
        """False when most vectors are flat along rank: then ordered and shuffled must coincide."""
        return self.smooth_r2 >= FLAT_R2

    def note(self) -> str:
        text = (f"rank profile of the source vectors (median over {self.matrices}): |Spearman rho| "
                f"{self.spearman:.3f}, smooth-fit R^2 {self.smooth_r2:.3f}, lag-1 autocorrelation {self.lag1:.3f}; "
                f"{self.flat} flat")
        if not self.carries_order:
            text += ("; warning: these vectors hardly vary along the rank axis, so an ordered transfer and a "
                     "shuffled one must coincide (up to noise)")
        return text

    def to_dict(self) -> dict:
        return {"matrices": self.matrices, "spearman": self.spearman, "smooth_r2": self.smooth_r2,
                "lag1": self.lag1, "flat": self.flat, "carries_order": self.carries_order}


def rank_profile(vectors: Mapping[str, np.ndarray]) -> RankProfile:
    per = {name: _profile(np.asarray(z, dtype=np.float64)) for name, z in sorted(vectors.items())}
    values = np.array(list(per.values())) if per else np.zeros((0, 3))
    medians = np.median(values, axis=0) if len(values) else np.zeros(3)
    return RankProfile(len(per), float(medians[0]), float(medians[1]), float(medians[2]),
                       int((values[:, 1] < FLAT_R2).sum()) if len(values) else 0, per)


def _profile(z: np.ndarray) -> tuple[float, float, float]:
    if z.size < 3 or float(z.std()) == 0.0:
        return 0.0, 0.0, 0.0
    ranks = np.arange(z.size, dtype=np.float64)
    spearman = abs(float(np.corrcoef(ranks, _ranks(z))[0, 1]))
    # A moving average over a tenth of the ranks that leaves each point out of its own window: on
    # independent noise it predicts nothing (R² near 0) whatever the vector's length.
    window = max(3, z.size // 10) | 1
    sums = np.convolve(z, np.ones(window), mode="same")
    counts = np.convolve(np.ones_like(z), np.ones(window), mode="same")
    smooth = (sums - z) / (counts - 1)
    r2 = max(0.0, 1.0 - float(((z - smooth) ** 2).sum() / ((z - z.mean()) ** 2).sum()))
    centred = z - z.mean()
    lag1 = float((centred[:-1] * centred[1:]).sum() / (centred**2).sum())
    return spearman, r2, lag1


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty_like(order, dtype=np.float64)
    ranks[order] = np.arange(values.size)
    return ranks
