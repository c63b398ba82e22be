"""Import experts saved by the reference code (SakanaAI/self-adaptive-llms).

* ``policy_params.pt``: ``learnable_params_module_list.{i}``, positional over the
  MLP matrices in state_dict order (gate, up, down per layer);
* ``learnable_params.pt`` (legacy): a dict keyed by parameter names.

Both hold bf16 pre-sigmoid logits p, with z = sigmoid(p) * max_mult, and the
reference applies nuclear renormalisation. Files are read with
``torch.load(weights_only=True)`` only: anything that needs full unpickling is refused.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from t2reg.architectures import MatrixSpec
from t2reg.errors import ExpertFileError

_POSITIONAL = re.compile(r"learnable_params_module_list\.(\d+)")


@dataclass(frozen=True)
class ReferenceExpert:
    """A reference-code file's vectors as z (``renormalize = nuclear``), and where they came from."""

    vectors: dict[str, np.ndarray]
    provenance: dict[str, Any]


def read_reference(path: Path, mlp_specs: Sequence[MatrixSpec], max_mult: float = 1.0) -> ReferenceExpert:
    """Convert a reference-code file into z vectors for the model ``mlp_specs`` describes."""
    state = _safe_load(Path(path))
    if not isinstance(state, dict) or not state:
        raise ExpertFileError(f"{path}: expected a non-empty dict of tensors")
    keys = list(state)
    if all(isinstance(k, str) and _POSITIONAL.fullmatch(k) for k in keys):
        logits = _positional(path, state, mlp_specs)
        layout = "policy_params"
    else:
        logits = {str(k): v for k, v in state.items()}
        layout = "learnable_params"
    vectors = {}
    for name, p in logits.items():
        if not isinstance(p, torch.Tensor) or p.dim() != 1 or not p.is_floating_point():
            raise ExpertFileError(f"{path}: entry {name!r} is not a 1-D float tensor")
        vectors[name] = (torch.sigmoid(p.float()) * max_mult).numpy().astype(np.float32)
    provenance = {"reference_layout": layout, "reference_file": Path(path).name, "max_mult": max_mult}
    return ReferenceExpert(vectors, provenance)


def _positional(path: Path, state: dict[str, Any], mlp_specs: Sequence[MatrixSpec]) -> dict[str, torch.Tensor]:
    indices = sorted(int(_POSITIONAL.fullmatch(k).group(1)) for k in state)
    if indices != list(range(len(mlp_specs))):
        raise ExpertFileError(
            f"{path}: holds {len(indices)} positional vectors, but the model has {len(mlp_specs)} MLP matrices"
        )
    return {spec.name: state[f"learnable_params_module_list.{i}"] for i, spec in enumerate(mlp_specs)}


def _safe_load(path: Path) -> Any:
    if not path.is_file():
        raise ExpertFileError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ExpertFileError(
            f"{path}: refused: loading it needs full unpickling, which could run arbitrary code "
            f"({str(exc).splitlines()[0][:120]})"
        ) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise ExpertFileError(f"{path}: not a readable torch file ({str(exc).splitlines()[0][:120]})") from None
