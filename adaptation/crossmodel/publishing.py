"""The transfer job: every method, each transfer published once with its lineage and reused when asked again.

``rank`` is the library's canonical-order transfer (:mod:`t2reg.transfer.publishing`,
no models run). ``projection`` and ``distill`` run both base models on unlabeled
text; their lineage row records the method, its settings and the texts' identity
(source, n, seed, sha256), so asking again for the same transfer finds it, and a
killed job continues from its checkpoint (distillation) or its cached moments
(projection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from t2reg.adaptation.crossmodel.spec import TransferSpec
from t2reg.adaptation.crossmodel.distill import (DistillReport, DistillTrainer, line_search, teacher_for,
                                                 teacher_summary)
from t2reg.adaptation.crossmodel.projection import collect, pairs_for
from t2reg.adaptation.crossmodel.texts import Texts, file_texts, parse_texts_option, stems, task_texts
from t2reg.adaptation.backends import open_for
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import Task, get_task
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.expert_file import Expert
from t2reg.registry import ExpertVersion, ModelInfo, Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.entities import Lineage
from t2reg.registry.validation import validate_name
from t2reg.specs import Checkpoint
from t2reg.transfer.controls import effective
from t2reg.transfer.layout import Layout
from t2reg.transfer.projection import ProjectionReport, project, report_notes
from t2reg.transfer.publishing import TransferResult, candidates, transfer_model, transfer_version
from t2reg.enums import Checkpointing, Relation, Source, TransferMethod, VersionStatus


def run_transfer(registry: Registry, spec: TransferSpec, *, state: dict[str, Any] | None = None,
                 checkpoint: Checkpoint | None = None) -> list[TransferResult]:
    """Run a transfer spec of any method (the ``transfer`` job kind): a result per expert carried. Transfers
    made before are reused, so a rerun redoes only what is missing."""
    spec.validate()
    if spec.method == TransferMethod.RANK:
        if spec.ref:
            return [transfer_version(registry, spec.ref, spec.target, spec.options(), name=spec.name,
                                     dry_run=spec.dry_run)]
        return transfer_model(registry, spec.source_model, spec.target, spec.options(), task=spec.task,
                              dry_run=spec.dry_run)
    refs = [spec.ref] if spec.ref else [v.ref for v in candidates(registry, spec.source_model, spec.task)]
    results = []
    for ref in refs:
        resumed = state if state and state.get("ref") == registry.get(ref).ref else None
        results.append(carry(registry, spec, ref, state=resumed, checkpoint=checkpoint))
    return results


def check(registry: Registry, spec: TransferSpec) -> None:
    """Refuse, before a job is queued, what would fail on its first step: the texts (a task that exists,
    not its test split, multiple choice for distill) and the experts to carry. No model is loaded."""
    spec.check(registry)
    if spec.method == TransferMethod.RANK:
        return
    refs = [spec.ref] if spec.ref else [v.ref for v in candidates(registry, spec.source_model, spec.task)]
    for ref in refs:
        _texts(spec, registry.get(ref))


def carry(registry: Registry, spec: TransferSpec, ref: str, *, state: dict[str, Any] | None = None,
          checkpoint: Checkpoint | None = None) -> TransferResult:
    """Carry one expert version by a data-driven method (or find the transfer already made)."""
    version = registry.get(ref)
    if version.status != VersionStatus.LIVE:
        raise NotFoundError(f"{version.ref} is {version.status}; transfer a live version")
    target = registry.get_model(spec.target)
    method = TransferMethod(spec.method)
    task, texts = _texts(spec, version)
    params = {**_settings(spec, method), **texts.identity(), "source_model": version.model,
              "target_model": target.name}
    existing = registry.find_derived(version.ref, Relation.TRANSFERRED_FROM, params)
    if existing is not None:
        return TransferResult(version.ref, target.name, _stored_report(existing), {}, existing, reused=True)
    save = (lambda s, e: checkpoint({"ref": version.ref, **s}, e)) if checkpoint else (lambda _s, _e: None)
    if method == TransferMethod.PROJECTION:
        vectors, renormalize, report = _projection(registry, spec, version, target, texts)
    else:
        vectors, renormalize, report = _distill(registry, spec, version, target, task, texts, state, save)
    published = _publish(registry, spec, version, target, method, vectors, renormalize, params, report)
    return TransferResult(version.ref, target.name, report, vectors, published)


# -- the methods ---------------------------------------------------------------------------------------------


def _projection(registry: Registry, spec: TransferSpec, version: ExpertVersion, target: ModelInfo,
                texts: Texts) -> tuple[dict[str, np.ndarray], str, ProjectionReport]:
    expert = registry.read_expert(version.ref)
    source_layout = Layout.from_config(version.model, registry.model_config(version.model))
    target_layout = Layout.from_config(target.name, registry.model_config(target.name))
    by_name = source_layout.by_name()
    pairs = pairs_for(source_layout, target_layout, {by_name[n].role for n in expert.vectors})
    moments = collect(registry, version.model, target.name, pairs, texts,
                      progress=lambda it: tqdm(it, desc="projection: both models read the texts", unit="batch",
                                               disable=None))
    s_spectra, t_spectra = load_spectra(version.model, registry), load_spectra(target.name, registry)
    effect = effective_z(expert, s_spectra)
    vectors, fits = {}, []
    for pair in pairs:
        m = moments[pair.target.name]
        s_sigma = s_spectra[pair.source.name].S.double().numpy()
        z_source = effect.get(pair.source.name, np.ones_like(s_sigma))
        vectors[pair.target.name], fit = project(
            m.fit, m.heldout, z_source, s_sigma, t_spectra[pair.target.name].S.double().numpy(),
            target=pair.target.name, source=pair.source.name, ridge=spec.ridge, bound=spec.bound,
            mismatched=spec.baseline == "shuffled")
        fits.append(fit)
    report = ProjectionReport(version.model, target.name, spec.baseline, spec.seed,
                              _settings(spec, TransferMethod.PROJECTION), texts.identity(), fits, report_notes(fits))
    return vectors, "none", report


def effective_z(expert: Expert, spectra) -> dict[str, np.ndarray]:
    """What the expert really multiplies each singular value by (its renormalisation folded in)."""
    return effective_vectors(expert.vectors, expert.meta.renormalize, spectra)


def effective_vectors(vectors: dict[str, np.ndarray], renormalize: str, spectra) -> dict[str, np.ndarray]:
    """``vectors`` under ``renormalize`` as the z they effectively apply to ``spectra``'s singular values."""
    return effective(vectors, renormalize, {name: spectra[name].S.double().numpy() for name in vectors})


def _distill(registry: Registry, spec: TransferSpec, version: ExpertVersion, target: ModelInfo, task: Task,
             texts: Texts, state: dict[str, Any] | None, save) -> tuple[dict[str, np.ndarray], str, DistillReport]:
    root = resolve_data_dir(spec.data_dir)
    split = texts.source.rsplit(":", 1)[1]
    other = "validation" if split != "validation" else "train"
    train = stems(task, split, spec.n_texts, spec.seed, root)
    held = stems(task, other, spec.validation, spec.seed, root)
    state = state or {}
    with open_for(registry, target.name, "hf") as backend:
        teacher = teacher_for(registry, version, target.name, backend, task, train + held,
                              progress=lambda it: tqdm(it, desc="teacher: options scored", unit="batch", disable=None))
        if spec.baseline == "shuffled":
            teacher = teacher.shuffled(spec.seed)
        trainer = DistillTrainer(registry, _train_spec(spec, target, task), task, backend, teacher, spec.beta,
                                 state.get("trainer"), spec.checkpoint_by)
        start = trainer.consider_start(held)
        for iteration in range(trainer.iteration + 1, spec.iterations + 1):
            event = trainer.step(iteration, train, held)
            save({"trainer": trainer.state()}, event)
        best = {n: v.detach().cpu().numpy() for n, v in trainer.best_z().items()}
        renormalize, search, notes = trainer.policy.renormalize, None, []
        if spec.line_search and trainer.best_iteration == 0:
            notes.append("line search skipped: the target alone was kept (z = 1 has no direction to stretch)")
        elif spec.line_search:
            search = line_search(backend, trainer.spectra, task, held, trainer.star,
                                 effective_vectors(best, renormalize, trainer.spectra))
            best, renormalize = search.vectors, "none"
    report = DistillReport(version.model, target.name, spec.baseline, spec.seed,
                           _settings(spec, TransferMethod.DISTILL), texts.identity(), teacher_summary(teacher, spec.beta),
                           trainer.best_iteration, trainer.curve, notes=notes, start_agreement=start.agreement,
                           start_teacher_kl=start.teacher_kl,
                           line_search=search.tries if search else [], factor=search.factor if search else 1.0)
    return best, renormalize, report


def _train_spec(spec: TransferSpec, target: ModelInfo, task: Task) -> TrainSpec:
    """The SVF training settings distillation runs under (the trainer is training's own)."""
    return TrainSpec(target.name, task.name, iterations=spec.iterations, examples_per_step=spec.examples_per_step,
                     kl=spec.kl, lr=spec.lr, validation=spec.validation, eval_every=spec.eval_every, seed=spec.seed,
                     data_dir=spec.data_dir)


# -- texts, settings, publishing -------------------------------------------------------------------------------


def _texts(spec: TransferSpec, version: ExpertVersion) -> tuple[Task | None, Texts]:
    root = resolve_data_dir(spec.data_dir)
    if spec.texts_file:
        if spec.method == TransferMethod.DISTILL:
            raise InvalidInputError("distill needs multiple-choice questions, not free text: give {texts} TASK[:SPLIT] "
                                    "instead of {texts_file}", options=["texts", "texts_file"])
        return None, file_texts(spec.texts_file, spec.n_texts, spec.seed)
    if spec.texts:
        task, split = parse_texts_option(spec.texts)
    elif version.task:
        task, split = get_task(version.task), "train"
    else:
        raise InvalidInputError(f"{version.ref} has no task to draw texts from: give {{texts}} or {{texts_file}}",
                                options=["texts", "texts_file"])
    if split == "test":
        raise InvalidInputError("{texts} from a test split would learn from the questions the transfer is "
                                "measured on: use train or validation", options=["texts"])
    if spec.method == TransferMethod.DISTILL and not task.multiple_choice:
        raise InvalidInputError(f"distill supports multiple-choice tasks (arc-easy, arc-challenge); {task.name} is "
                                "a generation task")
    return task, task_texts(task, split, spec.n_texts, spec.seed, root)


def _settings(spec: TransferSpec, method: TransferMethod) -> dict[str, Any]:
    common = {"method": str(method), "baseline": spec.baseline, "seed": spec.seed}
    if method == TransferMethod.PROJECTION:
        return {**common, "ridge": spec.ridge, "bound": spec.bound}
    # "batch_size" is the stored lineage key of examples per step: transfers made before the setting's rename
    # are found again by it, so asking for one again reuses it.
    # line_search and checkpoint_by only when not their defaults: a transfer made before the setting existed is
    # found again without it
    return {**common, "beta": spec.beta, "iterations": spec.iterations, "batch_size": spec.examples_per_step,
            "lr": spec.lr, "kl": spec.kl, "validation": spec.validation, "eval_every": spec.eval_every,
            **({"line_search": True} if spec.line_search else {}),
            **({"checkpoint_by": str(spec.checkpoint_by)} if spec.checkpoint_by != Checkpointing.AGREEMENT else {})}


def _publish(registry: Registry, spec: TransferSpec, version: ExpertVersion, target: ModelInfo,
             method: TransferMethod, vectors: dict[str, np.ndarray], renormalize: str, params: dict[str, Any],
             report) -> ExpertVersion:
    shuffled = spec.baseline == "shuffled"
    default = f"{version.name}--to-{target.handle}--{method}" + ("--shuffled" if shuffled else "")
    summary = report.summary() if isinstance(report, ProjectionReport) else report.teacher
    return registry.publish_derived(DerivedExpert(
        vectors, model=target.name, task=version.task,
        source=Source.TRANSFERRED_SHUFFLED if shuffled else Source.TRANSFERRED,
        name=validate_name(spec.name or default), renormalize=renormalize,
        provenance={"from": version.ref, **params, "summary": summary},
        description=f"{version.ref} transferred to {target.name} by {method}" + (" (control)" if shuffled else ""),
        tags={"method": str(method), **({"seed": str(spec.seed)} if shuffled else {})},
        lineage=(Lineage(version.ref, Relation.TRANSFERRED_FROM, None, params),),
    ))


@dataclass
class StoredReport:
    """A reused transfer's report: the settings its lineage row recorded and the summary its file carries."""

    params: dict[str, Any]
    recorded: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return dict(self.recorded)

    def to_dict(self) -> dict[str, Any]:
        return {**self.params, "summary": self.recorded}

    def lines(self):
        p = self.params
        yield (f"{p.get('source_model')} -> {p.get('target_model')}: {p.get('method')} on {p.get('n_texts')} texts "
               f"({p.get('texts')}), made earlier with these settings")
        if self.recorded:
            yield "recorded: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in self.recorded.items())


def _stored_report(version: ExpertVersion) -> StoredReport:
    edge = next((e for e in version.lineage if e.relation == Relation.TRANSFERRED_FROM), None)
    provenance = json.loads(version.metadata.get("provenance", "{}"))
    return StoredReport(dict(edge.params) if edge and edge.params else {}, provenance.get("summary") or {})
