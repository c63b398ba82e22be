"""Alignment between two models: which source layers feed a target layer, and
where each singular-value index of one matrix sits in another's.

Everything here is numpy over plain vectors, so it is tested without models.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from t2reg.errors import InvalidInputError

LAYER_ALIGNMENTS = ("relative", "index")
RANK_ALIGNMENTS = ("quantile", "index", "energy")


def layer_sources(target_layer: int, source_layers: int, target_layers: int, mode: str) -> list[tuple[int, float]]:
    """``[(source_layer, weight), ...]`` whose weighted sum gives ``target_layer``.

    ``relative`` puts target layer j at source position j·(Ls−1)/(Lt−1) and
    interpolates linearly between the two nearest source layers; ``index``
    maps j to j and needs equal depth.
    """
    if mode == "index":
        if source_layers != target_layers:
            raise InvalidInputError(
                f"index layer alignment needs equal depth; the models have {source_layers} and {target_layers} layers "
                "(align them by relative position: {layer_align} relative)", options=["layer_align"]
            )
        return [(target_layer, 1.0)]
    if mode != "relative":
        raise InvalidInputError(f"unknown {{layer_align}} {mode!r}; choose from {', '.join(LAYER_ALIGNMENTS)}",
                                options=["layer_align"])
    position = source_position(target_layer, source_layers, target_layers)
    low = math.floor(position)
    frac = position - low
    if frac == 0.0:
        return [(low, 1.0)]  # an exact hit copies, so equal depths reproduce the source bit for bit
    return [(low, 1.0 - frac), (low + 1, frac)]


def source_position(target_layer: int, source_layers: int, target_layers: int) -> float:
    if target_layers == 1:
        return 0.0
    # Exact rational arithmetic first so integral positions stay integral.
    numerator = target_layer * (source_layers - 1)
    if numerator % (target_layers - 1) == 0:
        return float(numerator // (target_layers - 1))
    return numerator / (target_layers - 1)


def quantile_positions(rank: int) -> np.ndarray:
    """Normalised position (i + ½) / r of each singular-value index."""
    return (np.arange(rank, dtype=np.float64) + 0.5) / rank


def energy_positions(sigma: np.ndarray) -> np.ndarray:
    """Cumulative spectral energy (Σσ²) at the middle of each index, in [0, 1]."""
    energy = np.asarray(sigma, dtype=np.float64) ** 2
    total = energy.sum()
    if total <= 0:
        return quantile_positions(len(energy))
    return (np.cumsum(energy) - energy / 2) / total


def resample(z: np.ndarray, target_rank: int, mode: str, source_sigma=None, target_sigma=None, what: str = "") -> np.ndarray:
    """A length-``target_rank`` vector carrying ``z`` over by rank alignment ``mode``."""
    z = np.asarray(z, dtype=np.float32)
    if mode == "index":
        if len(z) != target_rank:
            raise InvalidInputError(
                f"index rank alignment needs equal ranks; {what} has {len(z)} in the source and {target_rank} "
                "in the target (resample by position: {rank_align} quantile)", options=["rank_align"]
            )
        return z
    if mode == "quantile":
        positions: Callable[[], tuple[np.ndarray, np.ndarray]] = lambda: (
            quantile_positions(len(z)), quantile_positions(target_rank))
    elif mode == "energy":
        if source_sigma is None or target_sigma is None:
            raise InvalidInputError(f"energy rank alignment of {what} needs both models' singular values")
        positions = lambda: (energy_positions(source_sigma), energy_positions(target_sigma))  # noqa: E731
    else:
        raise InvalidInputError(f"unknown {{rank_align}} {mode!r}; choose from {', '.join(RANK_ALIGNMENTS)}",
                                options=["rank_align"])
    if len(z) == target_rank and mode == "quantile":
        return z  # identical positions: a copy, not an interpolation
    src, dst = positions()
    return np.interp(dst, src, z.astype(np.float64)).astype(np.float32)


def shuffle(z: np.ndarray, seed: int, key: str) -> np.ndarray:
    """A seeded permutation of ``z``; the seed and the matrix's name fix it exactly."""
    import zlib

    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return np.asarray(z)[rng.permutation(len(z))]
