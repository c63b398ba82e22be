"""How alike two models' spectra are, matrix pair by matrix pair."""

from __future__ import annotations

from typing import Any

import torch

from t2reg.spectra import Spectra
from t2reg.transfer.layout import Layout
from t2reg.transfer.report import TransferReport


def subspace_similarity(u_source: torch.Tensor, u_target: torch.Tensor, k: int) -> float:
    """||U_sᵀ U_t||_F² / k over the top-k left singular vectors: 1 = same subspace, ~k/n = unrelated."""
    overlap = u_source[:, :k].T.float() @ u_target[:, :k].float()
    return float((overlap**2).sum() / k)


def similarities(
    report: TransferReport, source: Layout, target: Layout, source_spectra: Spectra, target_spectra: Spectra, k: int = 32
) -> list[dict[str, Any]]:
    """One entry per directly mapped pair whose left singular vectors live in the same space."""
    direct = {r.role for r in report.roles if r.how == "direct"}
    out = []
    for mapping in report.layers:
        nearest = max(mapping.sources, key=lambda s: s[1])[0]
        for role in sorted(direct):
            t_spec, s_spec = target.matrices.get((mapping.target_layer, role)), source.matrices.get((nearest, role))
            if t_spec is None or s_spec is None or t_spec.name not in target_spectra or s_spec.name not in source_spectra:
                continue
            u_s, u_t = source_spectra[s_spec.name].U, target_spectra[t_spec.name].U
            if u_s.shape[0] != u_t.shape[0]:
                continue  # different output spaces: no shared basis to compare in
            kk = min(k, u_s.shape[1], u_t.shape[1])
            out.append({"target": t_spec.name, "source": s_spec.name, "k": kk,
                        "similarity": round(subspace_similarity(u_s, u_t, kk), 6)})
    return out
