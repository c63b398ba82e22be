"""Many mixtures in one batch: each row of a batch runs with its own expert, in factored form.

Rewriting W' = U diag(sigma * z * c) Vh costs m*n*r multiply-adds per matrix
and candidate. Leaving W alone and adding the expert's difference instead,

    y = W x + U ((sigma * (z_b * c_b - 1)) * (Vh x)),

costs (m + n) * r per token, and lets every row b of one batch carry its own
z_b. :class:`FactoredPopulation` hooks the adapted linear layers so a forward
pass over a batch whose rows belong to different candidates applies each
row's own mixture. The caller says which candidate each row belongs to by
setting :attr:`rows` before every forward pass.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from t2reg.adaptation import flops
from t2reg.adaptation.patching.patch import scaled_spectrum
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra


class FactoredPopulation:
    """Context manager: forward hooks that add row b's expert delta on the adapted matrices.

    ``renormalize`` is one rule for every mixture, or one per mixture (experts
    served side by side each keep their own file's rule).
    """

    def __init__(self, model: torch.nn.Module, spectra: Spectra, mixtures: Sequence[Mapping[str, torch.Tensor]],
                 renormalize: str | Sequence[str] = "nuclear") -> None:
        self.model = model
        self.rows: torch.Tensor | None = None
        rules = [renormalize] * len(mixtures) if isinstance(renormalize, str) else list(renormalize)
        if len(rules) != len(mixtures):
            raise InvalidInputError(f"{len(rules)} renormalisation rules for {len(mixtures)} mixtures")
        self._layers = [self._layer(name, spectra, mixtures, rules) for name in sorted(set().union(*mixtures))]
        self._handles: list = []

    def _layer(self, name: str, spectra: Spectra, mixtures, rules: Sequence[str]):
        module = self.model.get_submodule(name.removesuffix(".weight"))
        if not isinstance(module, torch.nn.Linear):
            raise InvalidInputError(f"{name}: population evaluation needs nn.Linear layers, not {type(module).__name__}")
        device = module.weight.device
        f = spectra[name].to(device)
        deltas = torch.stack([scaled_spectrum(f.S, m[name], rule, name) - f.S if name in m
                              else torch.zeros_like(f.S) for m, rule in zip(mixtures, rules)])
        return module, f.U.to(module.weight.dtype), f.Vh.to(module.weight.dtype), deltas.to(module.weight.dtype)

    def __enter__(self) -> "FactoredPopulation":
        for module, U, Vh, deltas in self._layers:
            self._handles.append(module.register_forward_hook(self._hook(U, Vh, deltas)))
        return self

    def __exit__(self, *_exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.rows = None

    def _hook(self, U: torch.Tensor, Vh: torch.Tensor, deltas: torch.Tensor):
        changes = deltas.ne(0).any(dim=1)  # per candidate: does it change this matrix at all?

        def add_delta(_module, inputs, output):
            if self.rows is None:
                raise RuntimeError("FactoredPopulation.rows must name each row's candidate before a forward pass")
            x = inputs[0]
            rows = self.rows.to(x.device)
            active = changes[rows]
            if not active.all():  # rows on the base weights here (a server's base-model requests) cost nothing
                if not active.any():
                    return output
                picked = active.nonzero().squeeze(1)
                return output.index_add(0, picked, _delta(x.index_select(0, picked), deltas[rows[picked]], U, Vh))
            return output + _delta(x, deltas[rows], U, Vh)

        return add_delta


def _delta(x: torch.Tensor, scale: torch.Tensor, U: torch.Tensor, Vh: torch.Tensor) -> torch.Tensor:
    """U ((sigma * (z c - 1)) * (Vh x)) for each row of ``x``, ``scale`` (rows, r) being its sigma * (z c - 1)."""
    flops.add(flops.FORWARD, U.dtype, 2 * (x.numel() // Vh.shape[1]) * Vh.shape[0] * (Vh.shape[1] + U.shape[0]))
    coefficients = (x @ Vh.T) * scale.view(scale.shape[0], *([1] * (x.dim() - 2)), scale.shape[1])
    return coefficients @ U.T
