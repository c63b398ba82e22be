"""Distillation transfer: train the target's z to move its answers the way the expert moves the source's.

No label is ever read. On unlabeled multiple-choice questions (a split's stems,
answers blanked), each option's cloze log-probability is taken from the source
base model, the source with the expert, and the target base model; so the two
tokenizers never meet, only option texts do. The teacher moves the target by
the expert's log-ratio on the source:

    log p*(option) = log p_t(option) + β · (log p_s^z(option) − log p_s(option)) + const

(proxy-tuning's rule, arXiv 2401.08565, applied per question over its
options). The target's z (the SVF policy training uses) is trained to minimise
KL(p* ‖ p_t^z) plus ``kl`` · KL(p_t^z ‖ p_t); checkpoints are chosen on
held-out stems of another split, again without labels: by agreement with the
teacher (argmax of p_t^z equal to argmax of p*; the default), or by the KL to
the teacher among checkpoints that agree with it at least as often as the
target alone (``checkpoint_by`` kl: agreement moves in steps of one stem and
stalls while the objective still falls).

With ``line_search``, the kept z is then stretched along its own direction: z − 1 scaled by each factor of
:data:`LINE_SEARCH` in turn while the held-out KL to the teacher (training's objective) keeps falling, on the
same held-out stems, still without a label; a factor whose agreement with the teacher falls below the trained
z's is never kept, so the checkpoints' rule (agreement) still bounds what is published. A few epochs of small
steps leave the direction right and the length short; the search costs a held-out pass per factor instead of
more training.

The control (``baseline shuffled``) hands each question the expert's shifts of
another question with as many options: any global preference (for a position,
for a length) survives, the per-question information does not.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from t2reg.adaptation.backends import Backend, open_for
from t2reg.adaptation.crossmodel.cache import cache_folder, model_identity, write
from t2reg.adaptation.evaluation.proxy import option_shift, shuffled_shifts
from t2reg.adaptation.evaluation.scoring import option_logprobs
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import Example, Task
from t2reg.adaptation.training.reinforce import PolicyTrainer
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.enums import Checkpointing
from t2reg.errors import InvalidInputError
from t2reg.question_results import normalised
from t2reg.spectra import Spectra
from t2reg.transfer.controls import Control, ControlKind
from t2reg.transfer.controls import make as make_control

Progress = Callable[[Iterable], Iterable]
LINE_SEARCH = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # factors of z - 1 tried after training, in order, until one does worse


@dataclass
class Teacher:
    """Per question id: the target base's option log-probabilities (normalised over the options) and the
    expert's shift on the source, log p_s^z − log p_s (normalised likewise)."""

    target: dict[str, list[float]]
    shift: dict[str, list[float]]

    def distribution(self, beta: float) -> dict[str, np.ndarray]:
        """log p* per question."""
        return {q: normalised(np.asarray(t) + beta * np.asarray(self.shift[q])) for q, t in self.target.items()}

    def shuffled(self, seed: int) -> "Teacher":
        """The control: shifts handed to other questions with as many options (seeded)."""
        return Teacher(self.target, shuffled_shifts(self.shift, seed))

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "shift": self.shift}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Teacher":
        return cls(data["target"], data["shift"])


def teacher_for(registry, version, target_model: str, target: Backend, task: Task, stems: list[Example],
                progress: Progress | None = None) -> Teacher:
    """The teacher of ``version`` (an expert on its base model) for ``target_model`` on ``stems``: computed
    once, then read from the cache (a transfer and its shuffled control share it)."""
    key = {"source": model_identity(registry, version.model), "expert": version.sha256,
           "target": model_identity(registry, target_model), "task": task.name,
           "prompt_version": task.prompt_version, "stems": [ex.id for ex in stems], "version": 1}
    folder = cache_folder(registry, "teacher", key)
    if (folder / "teacher.json").is_file():
        return Teacher.from_dict(json.loads((folder / "teacher.json").read_text()))
    teacher = compute_teacher(registry, version.model, registry.read_expert(version.ref), target, task, stems, progress)
    write(folder, "teacher.json", json.dumps(teacher.to_dict()).encode(), key)
    return teacher


def compute_teacher(registry, source_model: str, expert, target: Backend, task: Task, stems: list[Example],
                    progress: Progress | None = None) -> Teacher:
    """Score every stem's options on the source (base, then with the expert) and on the target base."""
    with open_for(registry, source_model, "hf") as source:
        base = option_logprobs(source, task, stems, progress)
        spectra = load_spectra(source_model, registry)
        with source.patched(spectra, expert):
            moved = option_logprobs(source, task, stems, progress)
    on_target = option_logprobs(target, task, stems, progress)
    return Teacher({ex.id: normalised(t).tolist() for ex, t in zip(stems, on_target)},
                   {ex.id: option_shift(b, m).tolist() for ex, b, m in zip(stems, base, moved)})


@dataclass
class DistillReport:
    """What the distillation did: the teacher, the curve, where checkpoints were chosen."""

    source_model: str
    target_model: str
    baseline: str
    seed: int | None
    settings: dict[str, Any]
    texts: dict[str, Any]
    teacher: dict[str, float] = field(default_factory=dict)  # how far the teacher is from the target base
    best_iteration: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start_agreement: float | None = None  # the untouched target's held-out agreement with the teacher
    start_teacher_kl: float | None = None  # and its held-out KL to the teacher
    line_search: list["LineTry"] = field(default_factory=list)  # each factor tried after training, in order
    factor: float = 1.0  # the factor of z - 1 kept by the line search (1: none ran, or none did better)

    def options(self) -> dict[str, Any]:
        return {"method": "distill", "baseline": self.baseline, "seed": self.seed, **self.settings, **self.texts}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> Iterable[str]:
        yield (f"{self.source_model} -> {self.target_model}: distill on {self.texts['n_texts']} unlabeled "
               f"questions ({self.texts['texts']}), beta {self.settings['beta']}, baseline {self.baseline}")
        t = self.teacher
        if t:
            yield (f"teacher: moves the target's pick on {t['changed_pick']:.1%} of training questions; "
                   f"mean KL(p* || p_t) {t['kl_to_base']:.4f}")
        if self.curve:
            last = self.curve[-1]
            start = "" if self.start_agreement is None else f" (the target alone: {self.start_agreement:.3f})"
            by_kl = self.settings.get("checkpoint_by") == Checkpointing.KL
            rule = " by KL to the teacher among those agreeing as often as the target alone" if by_kl else ""
            yield (f"trained {last['iteration']} iterations; best held-out agreement with the teacher "
                   f"{max(_agreement(e) for e in self.curve):.3f}{start}, kept iteration {self.best_iteration}{rule}"
                   + (" (no iteration did better than the target alone: z = 1)" if self.best_iteration == 0 else ""))
        if self.line_search:
            first, kept = self.line_search[0], next(t for t in self.line_search if t.factor == self.factor)
            tried = ", ".join(f"{t.factor:g}" for t in self.line_search)
            yield (f"line search along z - 1 on the held-out stems: kept factor {self.factor:g} of {tried} (KL to "
                   f"the teacher {first.fit.teacher_kl:.4f} -> {kept.fit.teacher_kl:.4f}, agreement "
                   f"{first.fit.agreement:.3f} -> {kept.fit.agreement:.3f})")
        for note in self.notes:
            yield f"note: {note}"


def _agreement(event: Mapping[str, Any]) -> float:
    """A curve entry's held-out agreement with the teacher (entries from before the KL rule hold it as their
    ``validation``, the score checkpoints were chosen by)."""
    return float(event.get("agreement", event.get("validation")) or 0.0)


def _same_pick(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two option distributions (log-probabilities) put their mode on the same option."""
    return int(np.argmax(a)) == int(np.argmax(b))


def teacher_summary(teacher: Teacher, beta: float) -> dict[str, float]:
    star = teacher.distribution(beta)
    changed, kls = [], []
    for q, target in teacher.target.items():
        t = np.asarray(target)
        changed.append(not _same_pick(star[q], t))
        kls.append(_kl(star[q], t))
    return {"changed_pick": float(np.mean(changed)), "kl_to_base": float(np.mean(kls))}


class DistillTrainer(PolicyTrainer):
    """The SVF trainer with the teacher's distribution as the objective instead of a reward, and its checkpoints
    chosen by how well they follow the teacher on held-out stems (``checkpoint_by``)."""

    # Where the expert changes nothing the teacher equals the target base up to float rounding, and the
    # gradient is rounding noise (about 1e-8 per coordinate); AdamW's default eps (1e-8) would turn it into
    # full steps of size lr. At 1e-6 such noise moves z by about 1 % of a step; real gradients (1e-4 and up
    # per coordinate on these models) are unaffected.
    adam_eps = 1e-6

    def __init__(self, registry, spec: TrainSpec, task: Task, backend: Backend, teacher: Teacher, beta: float,
                 state: dict | None, checkpoint_by: Checkpointing = Checkpointing.AGREEMENT) -> None:
        super().__init__(registry, spec, task, backend, backend, state)
        if not task.multiple_choice:
            raise InvalidInputError(f"distillation needs multiple-choice questions; {task.name} is not")
        self.star = teacher.distribution(beta)
        self.base = {q: np.asarray(t) for q, t in teacher.target.items()}
        self.checkpoint_by = Checkpointing(checkpoint_by)
        self.floor = 0.0  # the target alone's held-out agreement (set by consider_start): the KL rule's floor

    def _choice_rollout(self, batch, generator, _iteration):
        contexts = [self.task.cloze_prompt(ex) for ex in batch]
        pairs = [self.backend.split_continuation(c, f" {text}") for c, ex in zip(contexts, batch) for text in ex.choices]
        policy = self.backend.continuation_logprobs(pairs, self.policy.weights(self.layout))
        loss, distances, kls, start = 0.0, [], [], 0
        for ex in batch:
            options = slice(start, start + len(ex.choices))
            start += len(ex.choices)
            logp = torch.log_softmax(torch.stack([lp.sum() for lp in policy[options]]), -1)
            star = torch.as_tensor(self.star[ex.id], dtype=logp.dtype)
            base = torch.as_tensor(self.base[ex.id], dtype=logp.dtype)
            to_teacher = (star.exp() * (star - logp)).sum()
            # the target base's option distribution is the teacher's own: no second pass for the KL reference
            to_base = (logp.exp() * (logp - base)).sum().clamp_min(0.0)
            loss = loss + to_teacher + self.spec.kl * to_base
            distances.append(float(to_teacher.detach()))
            kls.append(float(to_base.detach()))
        # "reward" in the curve: minus the mean distance to the teacher (higher is better, as for training)
        return loss / len(batch), -float(np.mean(distances)), float(np.mean(kls))

    def consider_start(self, examples: list[Example]) -> "HeldOutFit":
        """Enter the untouched target as checkpoint 0, scored on the held-out stems as every checkpoint is (from
        the teacher's cached scores of the target, so no pass is run). A distilled z is published only when it
        follows the teacher better; a teacher the target cannot follow leaves z = 1 instead of whatever Adam's
        lr-sized steps wander to around it."""
        start = HeldOutFit(float(np.mean([_same_pick(self.base[ex.id], self.star[ex.id]) for ex in examples])),
                           float(np.mean([_kl(self.star[ex.id], self.base[ex.id]) for ex in examples])))
        self.floor = start.agreement
        if self.iteration == 0:  # a resumed run has it in its checkpoint already
            self._track(self._score(start), 0)
        return start

    def validate(self, examples: list[Example]) -> dict[str, Any]:
        fit = held_out_fit(self.backend, self.spectra, self.task, examples, self.star, self._z(),
                           self.policy.renormalize)
        return {"validation": self._score(fit), "agreement": fit.agreement, "teacher_kl": fit.teacher_kl}

    def _score(self, fit: "HeldOutFit") -> float | None:
        """What the checkpoint is chosen by (higher is better); None: not eligible (the KL rule's floor)."""
        if self.checkpoint_by == Checkpointing.AGREEMENT:
            return fit.agreement
        return -fit.teacher_kl if fit.agreement >= self.floor else None

    def _track(self, score: float | None, iteration: int) -> None:
        if score is None:  # kept out of the curve's JSON as -inf would be (PostgreSQL's json has no infinity)
            self.stale += 1
        else:
            super()._track(score, iteration)


@dataclass(frozen=True)
class HeldOutFit:
    """How well a z follows the teacher on held-out stems: how often its pick is the teacher's, and the mean
    KL(p* || p^z) over each question's options (what training minimises)."""

    agreement: float
    teacher_kl: float


def held_out_fit(backend: Backend, spectra: Spectra, task: Task, examples: list[Example],
                 star: dict[str, np.ndarray], z: Mapping[str, Any], renormalize: str) -> HeldOutFit:
    with backend.patched(spectra, z, renormalize):
        scored = option_logprobs(backend, task, examples)
    agree, distance = [], []
    for ex, logprobs in zip(examples, scored):
        logp, target = normalised(logprobs), star[ex.id]
        agree.append(_same_pick(logp, target))
        distance.append(_kl(target, logp))
    return HeldOutFit(float(np.mean(agree)), float(np.mean(distance)))


def _kl(target: np.ndarray, logp: np.ndarray) -> float:
    """KL(target ‖ p) over one question's options, both given as normalised log-probabilities."""
    return float((np.exp(target) * (target - logp)).sum())


@dataclass(frozen=True)
class LineTry:
    factor: float  # of z - 1
    fit: HeldOutFit


@dataclass
class LineSearch:
    """The stretched z (effective, no renormalisation), the factor kept and every factor tried."""

    vectors: dict[str, np.ndarray]
    factor: float
    tries: list[LineTry]


def line_search(backend: Backend, spectra: Spectra, task: Task, examples: list[Example],
                star: dict[str, np.ndarray], vectors: dict[str, np.ndarray]) -> LineSearch:
    """``vectors`` (effective z) with z - 1 scaled by the factor of :data:`LINE_SEARCH` that follows the teacher
    best on ``examples``: factors are tried in order until one's KL is not lower than the best so far (a KL
    that is not a number stops the search too); one whose agreement falls below factor 1's is tried but not
    kept. The stretch is the strength control's (clipped at 0)."""
    found = LineSearch(vectors, 1.0, [])
    best_kl = math.inf
    for factor in LINE_SEARCH:
        scaled = make_control(vectors, Control(ControlKind.STRENGTH, factor))
        fit = held_out_fit(backend, spectra, task, examples, star, scaled, "none")
        found.tries.append(LineTry(factor, fit))
        if not fit.teacher_kl < best_kl:
            break
        best_kl = fit.teacher_kl
        if fit.agreement >= found.tries[0].fit.agreement:
            found.vectors, found.factor = scaled, factor
    return found
