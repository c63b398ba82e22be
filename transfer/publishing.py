"""The registry step of a transfer: resolve, map (see :mod:`core`), publish with lineage.

A transfer that was already made (same source version, target and options) is
reused rather than published again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import numpy as np

from t2reg.errors import NotFoundError, Remedy
from t2reg.registry import ExpertVersion, Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.entities import Lineage
from t2reg.registry.validation import validate_name
from t2reg.spectra import Spectra
from t2reg.transfer.controls import Control, effective, make
from t2reg.transfer.core import RankOptions, transfer
from t2reg.transfer.layout import Layout
from t2reg.transfer.similarity import similarities
from t2reg.enums import Relation, Source, VersionStatus


class Report(Protocol):
    """What every method's report offers: its JSON and its lines for the terminal."""

    def to_dict(self) -> dict[str, Any]: ...

    def lines(self) -> Iterable[str]: ...


@dataclass
class TransferResult:
    source_ref: str
    target_model: str
    report: Report
    vectors: dict[str, np.ndarray]
    version: ExpertVersion | None = None  # None for a dry run
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source_ref, "target_model": self.target_model,
                "published": self.version.ref if self.version else None, "reused": self.reused,
                "report": self.report.to_dict(), "lines": list(self.report.lines())}


def transfer_version(
    registry: Registry,
    ref: str,
    target: str,
    options: RankOptions = RankOptions(),
    *,
    name: str | None = None,
    dry_run: bool = False,
) -> TransferResult:
    """Transfer one expert version to ``target`` and publish it (unless ``dry_run``)."""
    version = registry.get(ref)
    if version.status != VersionStatus.LIVE:
        raise NotFoundError(f"{version.ref} is {version.status}; transfer a live version")
    source_layout = Layout.from_config(version.model, registry.model_config(version.model))
    target_info = registry.get_model(target)
    target_layout = Layout.from_config(target_info.name, registry.model_config(target))
    spectra = _spectra(registry, version.model, target, required=options.rank_align == "energy")
    expert = registry.read_expert(version.ref)
    sigmas = {} if spectra is None else {
        "source_sigma": _sigmas(spectra[0]), "target_sigma": _sigmas(spectra[1])}
    vectors, report = transfer(expert.vectors, source_layout, target_layout, options, **sigmas)
    if spectra is not None:
        report.similarity = similarities(report, source_layout, target_layout, *spectra)
    result = TransferResult(version.ref, target_info.name, report, vectors)
    if dry_run:
        return result
    params = {**report.options(), "source_model": version.model, "target_model": target_info.name}
    existing = registry.find_derived(version.ref, Relation.TRANSFERRED_FROM, params)
    if existing is not None:
        result.version, result.reused = existing, True
        return result
    shuffled = options.shuffled
    default = f"{version.name}--to-{target_info.handle}" + ("--shuffled" if shuffled else "")
    result.version = registry.publish_derived(DerivedExpert(
        vectors, model=target_info.name, task=version.task,
        source=Source.TRANSFERRED_SHUFFLED if shuffled else Source.TRANSFERRED, name=validate_name(name or default),
        renormalize=expert.meta.renormalize, provenance={"from": version.ref, **params},
        description=f"{version.ref} transferred to {target_info.name}",
        tags={"seed": str(options.seed)} if shuffled else {},
        lineage=(Lineage(version.ref, Relation.TRANSFERRED_FROM, None, params),),
    ))
    return result


def candidates(registry: Registry, source_model: str, task: str | None = None) -> list[ExpertVersion]:
    """The latest live version of every expert of ``source_model`` made on it (not transferred to it)."""
    found = registry.list(model=source_model, task=task, sources=[Source.NATIVE, Source.IMPORTED, Source.ADAPTED])
    if not found:
        scope = f" for task {task!r}" if task else ""
        raise NotFoundError(f"model {source_model!r} has no experts{scope} to transfer")
    return found


def transfer_model(registry: Registry, source_model: str, target: str, options: RankOptions = RankOptions(), *,
                   task: str | None = None, dry_run: bool = False) -> list[TransferResult]:
    """Transfer the latest live version of every native expert of ``source_model`` (reusing those made)."""
    return [transfer_version(registry, v.ref, target, options, dry_run=dry_run)
            for v in candidates(registry, source_model, task)]


def _spectra(registry: Registry, source: str, target: str, required: bool) -> tuple[Spectra, Spectra] | None:
    loaded = []
    for model in (source, target):
        try:
            loaded.append(Spectra.load(registry.spectra_dir(model)))
        except NotFoundError:
            if required:
                raise NotFoundError(f"energy rank alignment needs the spectra of both models; {model} has none",
                                    remedy=Remedy("decompose it", ("model", "decompose"), (model,))) from None
            return None
    return loaded[0], loaded[1]


def _sigmas(spectra: Spectra) -> dict[str, np.ndarray]:
    return {name: spectra[name].S.numpy() for name in spectra.names()}


def control_version(registry: Registry, ref: str, control: Control) -> ExpertVersion:
    """Publish a control made from ``ref`` (see :mod:`t2reg.transfer.controls`), or find the one made before."""
    version = registry.get(ref)
    params = {**control.params(), "model": version.model}
    existing = registry.find_derived(version.ref, Relation.CONTROL_OF, params)
    if existing is not None:
        return existing
    expert = registry.read_expert(version.ref)
    sigmas = None
    if expert.meta.renormalize != "none":
        spectra = Spectra.load(registry.spectra_dir(version.model))
        sigmas = {name: spectra[name].S.numpy() for name in expert.vectors}
    vectors = make(effective(expert.vectors, expert.meta.renormalize, sigmas), control)
    return registry.publish_derived(DerivedExpert(
        vectors, model=version.model, task=version.task, source=Source.CONTROL,
        name=validate_name(f"{version.name}--{control.suffix()}"), renormalize="none",
        provenance={"from": version.ref, **params}, description=f"control of {version.ref}: {control.params()}",
        tags={"control": str(control.kind)}, lineage=(Lineage(version.ref, Relation.CONTROL_OF, None, params),),
    ))
