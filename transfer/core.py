"""Transfer an expert's vectors from one base model to another (no database here).

For each target matrix (layer j, role r): find the source layers that feed j
(layer alignment), read role r from the source expert at each (directly, split
from a fused role, or fused from split ones), carry every vector to the target
rank (rank alignment), and take the weighted sum. Roles the source does not
cover get z = 1 and are reported. The shuffled baseline then permutes each
vector with a recorded seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.transfer.alignment import (LAYER_ALIGNMENTS, RANK_ALIGNMENTS, layer_sources, resample, shuffle,
                                     source_position)
from t2reg.transfer.diagnostics import rank_profile
from t2reg.transfer.layout import Layout, group_of, read_role, role_source
from t2reg.transfer.report import LayerMapping, RoleCoverage, TransferReport

BASELINES = ("none", "shuffled")
Sigmas = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class RankOptions:
    """How a rank transfer maps z, with the defaults: the one home of these settings (the transfer job's
    spec, :func:`~t2reg.transfer.publishing.transfer_version` and the CLI take theirs from here)."""

    layer_align: str = "relative"  # which source layers feed a target layer (LAYER_ALIGNMENTS)
    rank_align: str = "quantile"  # where a source rank lands on the target's (RANK_ALIGNMENTS)
    baseline: str = "none"  # shuffled: the control, each vector permuted with ``seed``
    seed: int = 0

    def validate(self) -> None:
        for option, value, choices in (("layer_align", self.layer_align, LAYER_ALIGNMENTS),
                                       ("rank_align", self.rank_align, RANK_ALIGNMENTS),
                                       ("baseline", self.baseline, BASELINES)):
            if value not in choices:
                raise InvalidInputError(f"unknown {{{option}}} {value!r}; choose from {', '.join(choices)}",
                                        options=[option])

    @property
    def shuffled(self) -> bool:
        return self.baseline == "shuffled"


def transfer(
    vectors: Mapping[str, np.ndarray],
    source: Layout,
    target: Layout,
    options: RankOptions = RankOptions(),
    *,
    source_sigma: Sigmas | None = None,
    target_sigma: Sigmas | None = None,
) -> tuple[dict[str, np.ndarray], TransferReport]:
    """Map an expert's ``{parameter name: z}`` on ``source`` to ``target``.

    ``*_sigma`` map parameter names to singular values; ``energy`` rank alignment needs them.
    """
    options.validate()
    layer_align, rank_align, baseline, seed = options.layer_align, options.rank_align, options.baseline, options.seed
    if source.name == target.name:
        raise InvalidInputError(f"the target is the source model ({target.name}); transfer needs another model")
    canonical = _canonical(vectors, source)
    covered = {role for _, role in canonical}
    groups = {group_of(role) for role in covered}
    target_roles = sorted({role for (_, role) in target.matrices if group_of(role) in groups})
    plans = {role: role_source(role, covered) for role in target_roles}
    if all(p.how == "default" for p in plans.values()):
        raise InvalidInputError(
            f"no role in common: the expert covers {', '.join(sorted(covered))} of {source.name}, "
            f"{target.name} has {', '.join(target_roles) or 'none of those groups'}"
        )
    report = TransferReport(source.name, target.name, layer_align, rank_align, baseline,
                            seed if baseline == "shuffled" else None)
    profile = rank_profile(vectors)
    report.rank_profile = profile.to_dict()
    if not profile.carries_order:
        report.notes.append("the source vectors hardly vary along the rank axis (median smooth-fit R^2 "
                            f"{profile.smooth_r2:.3f}): an ordered transfer and a shuffled one must coincide, up to "
                            "noise; nothing can tell them apart")
    out: dict[str, np.ndarray] = {}
    counts = {role: [0, 0] for role in target_roles}
    for layer in range(target.num_layers):
        feeds = layer_sources(layer, source.num_layers, target.num_layers, layer_align)
        report.layers.append(LayerMapping(layer, source_position(layer, source.num_layers, target.num_layers), feeds))
        for role in target_roles:
            spec = target.matrices.get((layer, role))
            if spec is None:
                continue
            counts[role][0] += 1
            plan = plans[role]
            if plan.how == "default":
                out[spec.name] = np.ones(spec.rank, dtype=np.float32)
                continue
            parts = [(read_role(plan, role, src, canonical, target, layer), src, w) for src, w in feeds]
            out[spec.name] = _combine(parts, spec, plan.how, role, source, rank_align, source_sigma, target_sigma, report)
            counts[role][1] += 1
    report.roles = [RoleCoverage(r, plans[r].describe(), *counts[r]) for r in target_roles]
    if baseline == "shuffled":
        out = {name: shuffle(z, seed, name) for name, z in out.items()}
    return out, report


def _canonical(vectors: Mapping[str, np.ndarray], source: Layout) -> dict[tuple[int, str], np.ndarray]:
    by_name = source.by_name()
    canonical = {}
    for name, z in vectors.items():
        if name not in by_name:
            raise InvalidInputError(f"{name!r} is not an adaptable matrix of {source.name}")
        spec = by_name[name]
        canonical[(spec.layer, spec.role)] = np.asarray(z, dtype=np.float32)
    if not canonical:
        raise InvalidInputError("the expert holds no vectors")
    return canonical


def _combine(parts, spec, how, role, source: Layout, rank_align, source_sigma, target_sigma, report) -> np.ndarray:
    mode = rank_align
    if mode == "energy" and how != "direct":
        mode = "quantile"  # a split or fused vector has no spectrum of its own
        note = f"{role}: {how} vectors use quantile rank alignment (no spectrum of their own)"
        if note not in report.notes:
            report.notes.append(note)
    total = None
    for z, src_layer, weight in parts:
        src_name = source.matrices.get((src_layer, role)).name if how == "direct" else None
        sigma_s = source_sigma.get(src_name) if (mode == "energy" and source_sigma) else None
        sigma_t = target_sigma.get(spec.name) if (mode == "energy" and target_sigma) else None
        aligned = resample(z, spec.rank, mode, sigma_s, sigma_t, what=f"{role} (target layer {spec.layer})")
        if weight == 1.0:
            return aligned  # exact copy: no arithmetic touches the values
        total = aligned * np.float32(weight) if total is None else total + aligned * np.float32(weight)
    return total.astype(np.float32)
