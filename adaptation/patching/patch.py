"""Applying an SVF expert to a live model's weights.

W' = (U * (S * z * c)) @ Vh, one matmul per changed matrix, where c is the
nuclear renormalisation sum(S) / sum(S * z) (or 1). :class:`ExpertPatch` writes
W' into the model's parameters on entry and copies the saved originals back on
exit, so the model is bit-identical afterwards.
"""

from __future__ import annotations

import numpy as np
import torch

from t2reg.adaptation import flops
from t2reg.architectures import get_architecture
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Expert
from t2reg.spectra import Factors, Spectra
from t2reg.adaptation.patching.mixing import Vectors


def patched_weight(
    f: Factors,
    z: torch.Tensor,
    renormalize: str = "nuclear",
    name: str = "matrix",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """W' in (out, in) orientation and float32, on the factors' device (written into ``out`` if given)."""
    scaled = scaled_spectrum(f.S, z, renormalize, name)
    flops.add_rebuild(f.U, f.Vh)
    # Scale whichever factor is smaller: the same product with less memory traffic.
    if f.U.shape[0] >= f.Vh.shape[1]:
        return torch.matmul(f.U, scaled[:, None] * f.Vh, out=out)
    return torch.matmul(f.U * scaled, f.Vh, out=out)


def scaled_spectrum(S: torch.Tensor, z: "torch.Tensor | np.ndarray", renormalize: str = "nuclear",
                    name: str = "matrix") -> torch.Tensor:
    """sigma * z * c: the singular values of W' (c the nuclear renormalisation, or 1)."""
    z = torch.as_tensor(z, dtype=torch.float32, device=S.device)
    if z.shape != S.shape:
        raise InvalidInputError(f"{name}: z has length {z.shape[0]}, the matrix has rank {S.shape[0]}")
    scaled = S * z
    if renormalize == "nuclear":
        denominator = scaled.sum()
        if not denominator > 0:
            raise InvalidInputError(
                f"{name}: nuclear renormalisation divides by sum(sigma * z) = {denominator.item():.3g}; z must keep it positive"
            )
        return scaled * (S.sum() / denominator)
    if renormalize != "none":
        raise InvalidInputError(f"renormalize must be 'nuclear' or 'none', not {renormalize!r}")
    return scaled


class ExpertPatch:
    """Context manager: the model holds W' inside the block, its exact originals after.

    ``z`` is an :class:`~t2reg.expert_file.Expert` (its own ``renormalize`` is
    used) or a mapping from parameter name to vector, e.g. a :func:`mix`.
    Only the matrices ``z`` names change.
    """

    def __init__(self, model: torch.nn.Module, spectra: Spectra, z: "Expert | Vectors", renormalize: str | None = None):
        if isinstance(z, Expert):
            renormalize = renormalize or z.meta.renormalize
            z = z.vectors
        self.model = model
        self.spectra = spectra
        self.z = z
        self.renormalize = renormalize or "nuclear"
        self._saved: dict[str, torch.Tensor] = {}
        self._transposed = transposed_names(model)

    def __enter__(self) -> torch.nn.Module:
        try:
            self.apply()
        except BaseException:
            self.restore()
            raise
        return self.model

    def __exit__(self, *_exc: object) -> None:
        self.restore()

    @torch.no_grad()
    def apply(self) -> None:
        for name in sorted(self.z):
            param = _parameter(self.model, name)
            factors = self.spectra[name]
            if factors.S.device != param.device:
                factors = factors.to(param.device)
            transposed = name in self._transposed
            shape = (factors.U.shape[0], factors.Vh.shape[1])
            if (shape[::-1] if transposed else shape) != tuple(param.shape):
                raise InvalidInputError(f"{name}: spectra give shape {shape}, the model has {tuple(param.shape)}")
            if name not in self._saved:
                self._saved[name] = param.detach().clone()
            if param.dtype == torch.float32 and not transposed and param.is_contiguous():
                patched_weight(factors, self.z[name], self.renormalize, name, out=param.data)  # no temporary W'
            else:
                new = patched_weight(factors, self.z[name], self.renormalize, name)
                param.copy_((new.T if transposed else new).to(param.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        for name, original in self._saved.items():
            _parameter(self.model, name).copy_(original)
        self._saved.clear()


def _parameter(model: torch.nn.Module, name: str) -> torch.nn.Parameter:
    try:
        return model.get_parameter(name)
    except AttributeError:
        raise InvalidInputError(f"the model has no parameter {name!r}") from None


def transposed_names(model: torch.nn.Module) -> set[str]:
    """Parameters stored (in, out) rather than (out, in): GPT-2's Conv1D weights."""
    archs = getattr(model.config, "architectures", None) or []
    if not archs:
        return set()
    arch = get_architecture(archs[0])
    return {n for n, _ in model.named_parameters() if arch.transposed and arch.locate(n)}
