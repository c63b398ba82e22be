"""A trainable SVF expert: one learnable vector per adapted matrix, differentiable W'.

Two parametrisations, both saved as format v1 z vectors:

* ``logits`` (the reference code's): learn p, z = sigmoid(p) * max_mult, with
  nuclear renormalisation, so imported and trained experts mean the same thing;
* ``scale``: learn z directly (no renormalisation).

Gradients reach z through W' = (U * (sigma * z * c)) @ Vh, built from the cached
spectra for the adapted matrices only and handed to the backend's forward pass
in place of the model's own (:meth:`DifferentiableBackend.logits`): the model's
parameters are never touched, so the same backend without replacements is the
frozen base policy the KL term compares against (no second copy of the model).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from t2reg.adaptation import flops
from t2reg.adaptation.backends import WeightLayout
from t2reg.adaptation.patching import scaled_spectrum
from t2reg.adaptation.training.spec import PARAMETRIZATIONS, Parametrization
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra


class SVFPolicy(torch.nn.Module):
    """Learnable vectors for ``names``; :meth:`z` gives the expert, :meth:`weights` the patched matrices."""

    def __init__(self, spectra: Spectra, names: Sequence[str], param: str = "logits", init: float = 0.1,
                 max_mult: float = 1.0, device: str | torch.device = "cpu") -> None:
        super().__init__()
        if param not in PARAMETRIZATIONS:
            raise InvalidInputError(f"{{param}} must be one of {', '.join(PARAMETRIZATIONS)}, not {param!r}",
                                    options=["param"])
        if not names:
            raise InvalidInputError("no matrices to train: check {modules} against the model", options=["modules"])
        self.spectra, self.names, self.param, self.max_mult = spectra, list(names), param, max_mult
        self.renormalize = "nuclear" if param == Parametrization.LOGITS else "none"
        self.vectors = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.full_like(spectra[n].S, init, device=device)) for n in self.names])
        self._factors = {n: spectra[n].to(device) for n in self.names}

    def z(self) -> dict[str, torch.Tensor]:
        """The expert's z per matrix (with gradients)."""
        if self.param == Parametrization.LOGITS:
            return {n: torch.sigmoid(p) * self.max_mult for n, p in zip(self.names, self.vectors)}
        return dict(zip(self.names, self.vectors))

    def weights(self, layout: Mapping[str, WeightLayout]) -> dict[str, torch.Tensor]:
        """W' per adapted parameter, in the model's orientation and dtype (``layout``), differentiable in z."""
        out = {}
        for name, z in self.z().items():
            f = self._factors[name]
            w = (f.U * scaled_spectrum(f.S, z, self.renormalize, name)) @ f.Vh
            flops.add_rebuild(f.U, f.Vh, with_gradient=w.requires_grad)
            out[name] = (w.T if layout[name].transposed else w).to(layout[name].dtype)
        return out


def token_kl(logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """KL(pi_z || pi_base) of the next-token distributions, per position."""
    logp = torch.log_softmax(logits, -1)
    # KL is never negative; float rounding can make two equal distributions' KL -1e-8
    return (logp.exp() * (logp - torch.log_softmax(base_logits, -1))).sum(-1).clamp_min(0.0)
