"""Building real expert files for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from t2reg.expert_file import Expert, ExpertMeta, Metric, write_expert


def make_expert(
    shapes: Mapping[str, tuple[int, int]],
    base_model: str,
    task: str | None = "gsm8k",
    seed: int = 0,
    roles: tuple[str, ...] = ("mlp",),
    metrics: tuple[Metric, ...] = (),
    source: str = "native",
) -> Expert:
    """An expert over the model's matrices whose names contain one of ``roles``."""
    rng = np.random.default_rng(seed)
    vectors = {
        name: rng.uniform(0.5, 1.5, size=min(shape)).astype(np.float32)
        for name, shape in shapes.items()
        if any(f".{role}." in name for role in roles)
    }
    meta = ExpertMeta(base_model=base_model, task=task, metrics=metrics, provenance={"source": source})
    return Expert(vectors, meta)


def write(expert: Expert, path: Path) -> Path:
    write_expert(expert, path)
    return path
