"""Counting the arithmetic a run asks of the hardware: linear layers forward and backward, weight rebuilds.

Inside ``with FlopCount() as count:`` every ``nn.Linear`` call adds 2·rows·in·out
floating-point operations (padding rows included: what was asked, not what was
useful) under ``forward``, and, when autograd will need them, as many again
under ``backward`` for the input's gradient and for the weight's; rebuilding a
matrix W' = U diag(σz) Vᵀ adds 2·m·r·n under ``rebuild`` (:func:`add`, from the
patching and training code), and the factored population path its own
products. Attention's score and value products (about 2 % of a layer at the
demo's 50-100 token contexts), elementwise work and SVDs are not counted.

A global module hook does the counting: a Python call per module call, nothing
per tensor operation (a ``TorchDispatchMode`` doing the same cost 18-50 % of a
SmolLM2 forward pass; this costs nothing measurable). Counts are kept per kind
and per dtype (what the weights are stored in), so a report can hold each
against its own measured peak.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

FORWARD, BACKWARD, REBUILD = "forward", "backward", "rebuild"
_ACTIVE: list["FlopCount"] = []
_HOOK: Any = None


class FlopCount:
    """Operations counted while the block runs: ``flops[kind][dtype]`` (nested counts each see everything)."""

    def __init__(self) -> None:
        self.flops: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def __enter__(self) -> "FlopCount":
        global _HOOK
        if not _ACTIVE:
            _HOOK = torch.nn.modules.module.register_module_forward_hook(_on_module)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        global _HOOK
        _ACTIVE.remove(self)
        if not _ACTIVE and _HOOK is not None:
            _HOOK.remove()
            _HOOK = None

    @property
    def total(self) -> int:
        return sum(sum(by_dtype.values()) for by_dtype in self.flops.values())

    def by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for by_dtype in self.flops.values():
            for dtype, flops in by_dtype.items():
                out[dtype] += flops
        return dict(out)

    def by_kind(self) -> dict[str, int]:
        return {kind: sum(by_dtype.values()) for kind, by_dtype in self.flops.items()}


def add(kind: str, dtype: torch.dtype, flops: int) -> None:
    """Count ``flops`` of ``kind`` in ``dtype`` in every active :class:`FlopCount` (nothing when none is)."""
    if _ACTIVE:
        name = str(dtype).removeprefix("torch.")
        for count in _ACTIVE:
            count.flops[kind][name] += int(flops)


def add_rebuild(U: torch.Tensor, Vh: torch.Tensor, with_gradient: bool = False) -> None:
    """W' = (U·s) Vh: 2·m·r·n, and as much again for the gradient of the scaled factor."""
    if _ACTIVE:
        flops = 2 * U.shape[0] * U.shape[1] * Vh.shape[1]
        add(REBUILD, U.dtype, flops)
        if with_gradient:
            add(BACKWARD, U.dtype, flops)


def _on_module(module: torch.nn.Module, inputs: tuple, _output: Any) -> None:
    if not isinstance(module, torch.nn.Linear) or not inputs or not isinstance(inputs[0], torch.Tensor):
        return
    x, weight = inputs[0], module.weight
    flops = 2 * (x.numel() // module.in_features) * module.in_features * module.out_features
    add(FORWARD, weight.dtype, flops)
    if torch.is_grad_enabled():
        add(BACKWARD, weight.dtype, flops * (int(x.requires_grad) + int(weight.requires_grad)))
