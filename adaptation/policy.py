"""A trainable SVF expert: one learnable vector per adapted matrix, differentiable W'.

Two parametrisations, both saved as format v1 z vectors:

* ``logits`` (the reference code's): learn p, z = sigmoid(p) * max_mult, with
  nuclear renormalisation, so imported and trained experts mean the same thing;
* ``scale``: learn z directly (no renormalisation).

Gradients reach z through W' = (U * (sigma * z * c)) @ Vh, built from the cached
spectra for the adapted matrices only and handed to the model with
``torch.func.functional_call``: the model's own parameters are never touched, so
the same model, called plainly, is the frozen base policy the KL term compares
against (no second copy of the model).
"""

from __future__ import annotations

from typing import Sequence

import torch

from t2reg.adaptation.patch import _transposed_names, scaled_spectrum
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra

PARAMETRIZATIONS = ("logits", "scale")


class SVFPolicy(torch.nn.Module):
    """Learnable vectors for ``names``; :meth:`z` gives the expert, :meth:`weights` the patched matrices."""

    def __init__(self, spectra: Spectra, names: Sequence[str], param: str = "logits", init: float = 0.1,
                 max_mult: float = 1.0, device: str | torch.device = "cpu") -> None:
        super().__init__()
        if param not in PARAMETRIZATIONS:
            raise InvalidInputError(f"--param must be one of {', '.join(PARAMETRIZATIONS)}, not {param!r}")
        if not names:
            raise InvalidInputError("no matrices to train: check --modules against the model")
        self.spectra, self.names, self.param, self.max_mult = spectra, list(names), param, max_mult
        self.renormalize = "nuclear" if param == "logits" else "none"
        self.vectors = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.full_like(spectra[n].S, init, device=device)) for n in self.names])
        self._factors = {n: spectra[n].to(device) for n in self.names}

    def z(self) -> dict[str, torch.Tensor]:
        """The expert's z per matrix (with gradients)."""
        if self.param == "logits":
            return {n: torch.sigmoid(p) * self.max_mult for n, p in zip(self.names, self.vectors)}
        return dict(zip(self.names, self.vectors))

    def weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """W' per adapted parameter, in the model's orientation and dtype, differentiable in z."""
        transposed = _transposed_names(model)
        out = {}
        for name, z in self.z().items():
            f = self._factors[name]
            w = (f.U * scaled_spectrum(f.S, z, self.renormalize, name)) @ f.Vh
            param = model.get_parameter(name)
            out[name] = (w.T if name in transposed else w).to(param.dtype)
        return out


def forward(model: torch.nn.Module, weights: dict[str, torch.Tensor] | None, input_ids: torch.Tensor,
            attention_mask: torch.Tensor, keep: int = 0) -> torch.Tensor:
    """Logits (of the last ``keep`` positions; 0: all) of the model with ``weights`` in place of its own.

    ``weights=None`` is the base model, without gradients.
    """
    # positions count real tokens only, so left padding shifts nothing (GPT-2's positions are absolute)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": positions, "logits_to_keep": keep}
    if weights is None:
        with torch.no_grad():
            return model(**inputs).logits.float()
    return torch.func.functional_call(model, weights, (), inputs).logits.float()


def token_kl(logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """KL(pi_z || pi_base) of the next-token distributions, per position."""
    logp = torch.log_softmax(logits, -1)
    return (logp.exp() * (logp - torch.log_softmax(base_logits, -1))).sum(-1)
