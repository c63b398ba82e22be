"""SVF expert training by policy gradient (Transformer², section 3 and appendix A.1).

One learnable vector per adapted matrix; REINFORCE with reward +1/-1 for a
correct/incorrect answer, a KL penalty to the base model weighted by lambda,
AdamW with cosine decay and gradient clipping; the best checkpoint on a
validation split is published, with its validation and test scores and the
training curve.

Actions: a multiple-choice task's action is one of the question's options, the
policy over them given by their cloze log-likelihoods (each option's text as
the continuation of the question, exactly as evaluation scores them, so a
preference for a letter or a position cannot be learnt). With the ``exact``
estimator the loss is the expected reward over the options itself (no
sampling noise); ``reinforce`` samples one option per question. The KL is
between the policy's and the base model's distributions over the options. Any
other task's action is a sampled completion (from the ``hf`` or ``vllm``
sampler with the current z pushed in), scored by the task's checker.

Validation (for checkpoint selection) and the held-out report are seeded
samples of their splits, scored under the task's default mode and recorded
with their protocol; the result carries a paired comparison with the base
model on the same held-out questions.

Resumable: each iteration's randomness derives from (seed, iteration), and the
checkpoint holds z, the optimizer state and the best-so-far, so a killed run
continues to the same z as an uninterrupted one.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from t2reg.adaptation.backends import Backend, Capability, GenerationRequest, Sampling, open_for
from t2reg.adaptation.evaluation.compare import base_result
from t2reg.adaptation.evaluation.paired import Comparison, pair
from t2reg.adaptation.evaluation.questions import SAMPLE_SEED, Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import Phases, Progress, evaluate, measure
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import LETTERS, Example, Task, get_task
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.adaptation.training.policy import SVFPolicy, token_kl
from t2reg.adaptation.training.spec import Estimator, Parametrization, TrainRecord, TrainSpec
from t2reg.architectures import matrix_specs
from t2reg.errors import InvalidInputError, Remedy
from t2reg.registry import ExpertVersion, Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.entities import Lineage
from t2reg.specs import Checkpoint
from t2reg.enums import Relation, Source


@dataclass
class TrainResult:
    version: ExpertVersion
    iterations: int
    best_iteration: int
    validation: EvalResult
    test: EvalResult
    base: EvalResult
    curve: list[dict[str, Any]]
    paired: Comparison | None = None  # held-out: the trained expert against the base model, question by question

    def record(self) -> TrainRecord:
        return TrainRecord(self.version.ref, self.iterations, self.best_iteration, self.validation.record(),
                           self.test.record(), self.base.record(), self.paired.record() if self.paired else None)

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_dict()


def train(registry: Registry, spec: TrainSpec, *, state: dict[str, Any] | None = None,
          checkpoint: Checkpoint | None = None, on_iteration: Callable[[dict[str, Any]], None] | None = None,
          job_id: int | None = None, progress: Phases | None = None) -> TrainResult:
    """Train (or continue, from ``state``) an SVF expert and publish the best checkpoint. ``progress`` shows
    the scoring after the last iteration (the best checkpoint on validation and held-out questions, the
    base model on the held-out ones unless that is recorded already)."""
    phase = progress or (lambda _label: None)
    spec.validate()
    task = get_task(spec.task)
    if spec.max_new_tokens:
        task = dataclasses.replace(task, max_new_tokens=spec.max_new_tokens)
    root = resolve_data_dir(spec.data_dir)
    train_examples = task.examples("train", root)
    validation_questions = Questions.draw(task, "validation", spec.validation, SAMPLE_SEED, root)
    heldout = Questions.draw(task, "test", spec.heldout, SAMPLE_SEED, root)
    if len(train_examples) < spec.examples_per_step:
        raise InvalidInputError(f"{task.name} has {len(train_examples)} training examples; {{examples_per_step}} is "
                                f"{spec.examples_per_step}", options=["examples_per_step"])
    with ExitStack() as stack:
        backend = stack.enter_context(open_for(registry, spec.model, "hf", device=spec.device, dtype=spec.dtype))
        sampler = backend if spec.sampler == "hf" or task.multiple_choice else stack.enter_context(
            open_for(registry, spec.model, spec.sampler))
        trainer = PolicyTrainer(registry, spec, task, backend, sampler, state)
        for iteration in range(trainer.iteration + 1, spec.iterations + 1):
            event = trainer.step(iteration, train_examples, validation_questions.examples)
            (checkpoint or (lambda _s, _e: None))(trainer.state(), event)
            if on_iteration:
                on_iteration(event)
            if trainer.should_stop():
                break
        best = trainer.best_z()
        validation = trainer.measure(best, validation_questions, phase("best checkpoint, validation"))
        test = trainer.measure(best, heldout, phase("best checkpoint, held-out"))
        base = base_result(registry, spec.model, heldout, backend.dtype,
                           lambda: measure(backend, heldout, progress=phase("base model, held-out")), "train-base")
    version = _publish(registry, spec, task, best, trainer, validation, test, job_id)
    return TrainResult(version, trainer.iteration, trainer.best_iteration, validation, test, base, trainer.curve,
                       pair(base.outputs, test.outputs, f"base:{spec.model}", version.ref, test.protocol))


class PolicyTrainer:
    """The policy, its optimizer and the bookkeeping of one run; ``state()`` is its checkpoint."""

    adam_eps = 1e-8  # AdamW's own default

    def __init__(self, registry: Registry, spec: TrainSpec, task: Task, backend: Backend, sampler: Backend,
                 state: dict | None) -> None:
        if not backend.supports(Capability.GRADIENTS):  # the contract's word for a DifferentiableBackend
            raise InvalidInputError(f"the {backend.name} backend cannot take gradients; training needs hf")
        self.spec, self.task, self.backend, self.sampler = spec, task, backend, sampler
        self.spectra = load_spectra(spec.model, registry)
        names = [m.name for m in matrix_specs(registry.model_config(spec.model), spec.modules)]
        missing = [n for n in names if n not in self.spectra]
        if missing:
            raise InvalidInputError(f"no spectra for {len(missing)} {spec.modules} matrices of {spec.model}",
                                    remedy=Remedy("decompose them", ("model", "decompose"), (spec.model,),
                                                  (("modules", str(spec.modules)),)))
        self.layout = backend.weight_layout(names)
        init = spec.init if spec.param == Parametrization.LOGITS else spec.init_scale
        self.policy = SVFPolicy(self.spectra, names, spec.param, init, spec.max_mult, backend.device)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=spec.lr, eps=self.adam_eps)
        self.iteration, self.best_iteration, self.best_score = 0, 0, float("-inf")
        self.stale, self.curve = 0, []
        self._best = [p.detach().clone() for p in self.policy.vectors]
        if state:
            self._restore(state)

    # -- one iteration ----------------------------------------------------------------

    def step(self, iteration: int, train_examples: list[Example], val_examples: list[Example]) -> dict[str, Any]:
        start = time.monotonic()
        lr = self.spec.lr * 0.5 * (1 + math.cos(math.pi * (iteration - 1) / self.spec.iterations))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rng = np.random.default_rng([self.spec.seed, iteration])
        batch = [train_examples[i] for i in rng.choice(len(train_examples), self.spec.examples_per_step, replace=False)]
        generator = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + iteration)
        rollout = self._choice_rollout if self.task.multiple_choice else self._generation_rollout
        loss, reward, kl = rollout(batch, generator, iteration)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.spec.clip))
        self.optimizer.step()
        self.iteration = iteration
        event = {"iteration": iteration, "reward": reward, "kl": kl, "loss": float(loss.detach()), "lr": lr,
                 "grad_norm": grad_norm}
        if iteration % self.spec.eval_every == 0 or iteration == self.spec.iterations:
            event |= self.validate(val_examples)
            self._track(event["validation"], iteration)
        event["seconds"] = time.monotonic() - start
        self.curve.append(event)
        return event

    def _choice_rollout(self, batch, generator, _iteration):
        """The policy over each question's options, from their cloze log-likelihoods (each option's text as
        the continuation of the question, as evaluation scores them): the exact expected reward, or one
        sampled option per question (REINFORCE); the KL is between the option distributions."""
        contexts = [self.task.cloze_prompt(ex) for ex in batch]
        pairs = [self.backend.split_continuation(c, f" {text}") for c, ex in zip(contexts, batch) for text in ex.choices]
        # Each question's prefix runs once and its cache serves its options, with gradients through both.
        policy = self.backend.continuation_logprobs(pairs, self.policy.weights(self.layout))
        # The KL reference, recomputed per batch: a cache keyed by example would grow with the data
        # and make a resumed run differ from an uninterrupted one.
        with torch.no_grad():
            base = self.backend.continuation_logprobs(pairs)
        loss, rewards, kls, start = 0.0, [], [], 0
        for ex in batch:
            options = slice(start, start + len(ex.choices))
            start += len(ex.choices)
            logp = torch.log_softmax(torch.stack([lp.sum() for lp in policy[options]]), -1)
            base_logp = torch.log_softmax(torch.stack([lp.sum() for lp in base[options]]), -1)
            reward = torch.full_like(logp, -1.0)
            reward[LETTERS.index(ex.answer)] = 1.0
            if self.spec.estimator == Estimator.EXACT:  # the gradient of the expected reward itself: no sampling noise
                gain = (logp.exp() * reward).sum()
                rewards.append(float(gain.detach()))
            else:  # sampled on the CPU: the seeded generator lives there whatever device the model is on
                action = int(torch.multinomial(logp.detach().exp().cpu(), 1, generator=generator))
                gain = reward[action] * logp[action]
                rewards.append(float(reward[action]))
            kl = (logp.exp() * (logp - base_logp)).sum().clamp_min(0.0)  # rounding can dip below 0
            loss = loss - gain + self.spec.kl * kl
            kls.append(float(kl.detach()))
        return loss / len(batch), float(np.mean(rewards)), float(np.mean(kls))

    def _generation_rollout(self, batch, _generator, iteration):
        """Sample completions with the current z, score them, and weight their log-likelihood by the reward."""
        prompts = [self.backend.render(self.task.prompt(ex)) for ex in batch]
        z = self._z()
        sampling = Sampling(self.task.max_new_tokens, self.task.stop, temperature=self.spec.temperature,
                            seed=self.spec.seed * 1_000_003 + iteration)
        with self.sampler.patched(self.spectra, z, self.policy.renormalize):
            texts = self.sampler.generate([GenerationRequest(p, sampling) for p in prompts])
        rewards = [1.0 if self.task.check(ex, text) else -1.0 for ex, text in zip(batch, texts)]
        pairs = [self.backend.split_continuation(p, t) if t else (self.backend.split_continuation(p, " ")[0], [])
                 for p, t in zip(prompts, texts)]
        keep = max(1, max(len(c) for _, c in pairs)) + 1
        ids, mask = self.backend.pad([c + k for c, k in pairs])
        logits = self.backend.logits(ids, mask, keep, self.policy.weights(self.layout))
        base = self.backend.logits(ids, mask, keep)
        loss, kls = 0.0, []
        for row, (_, cont) in enumerate(pairs):
            if not cont:
                continue
            predicting = _predicting(cont, keep)
            logp = torch.log_softmax(logits[row, predicting], -1)[torch.arange(len(cont)), torch.tensor(cont)]
            kl = token_kl(logits[row, predicting], base[row, predicting]).mean()
            loss = loss - rewards[row] * logp.mean() + self.spec.kl * kl
            kls.append(float(kl.detach()))
        if isinstance(loss, float):  # every completion was empty: nothing to learn from this batch
            loss = sum(p.sum() * 0 for p in self.policy.parameters())
        return loss / len(batch), float(np.mean(rewards)), float(np.mean(kls)) if kls else 0.0

    def validate(self, examples: list[Example]) -> dict[str, Any]:
        """The event's validation entries; ``validation`` is the score checkpoints are chosen by."""
        return {"validation": self.score(self._z(), examples).score}

    # -- helpers ---------------------------------------------------------------------------

    def _z(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {n: v.detach().clone() for n, v in self.policy.z().items()}

    def measure(self, z: dict[str, torch.Tensor], questions: Questions, progress: Progress | None = None
                ) -> EvalResult:
        with self.backend.patched(self.spectra, z, self.policy.renormalize):
            return measure(self.backend, questions, progress=progress)

    def score(self, z: dict[str, torch.Tensor], examples: list[Example]) -> EvalResult:
        with self.backend.patched(self.spectra, z, self.policy.renormalize):
            return evaluate(self.backend, self.task, examples)

    def _track(self, score: float, iteration: int) -> None:
        if score > self.best_score:
            self.best_score, self.best_iteration, self.stale = score, iteration, 0
            self._best = [p.detach().clone() for p in self.policy.vectors]
        else:
            self.stale += 1

    def should_stop(self) -> bool:
        return self.spec.patience is not None and self.stale >= self.spec.patience

    def initial_z(self) -> dict[str, torch.Tensor]:
        """z as training started it (every vector at its initial value)."""
        init = self.spec.init if self.spec.param == Parametrization.LOGITS else self.spec.init_scale
        vectors = [torch.full_like(p, init) for p in self.policy.vectors]
        with torch.no_grad():
            if self.policy.param == Parametrization.LOGITS:
                return {n: (torch.sigmoid(v) * self.policy.max_mult).cpu() for n, v in zip(self.policy.names, vectors)}
            return {n: v.cpu() for n, v in zip(self.policy.names, vectors)}

    def best_z(self) -> dict[str, torch.Tensor]:
        current = [p.detach().clone() for p in self.policy.vectors]
        with torch.no_grad():
            for p, b in zip(self.policy.vectors, self._best):
                p.copy_(b)
            best = self._z()
            for p, c in zip(self.policy.vectors, current):
                p.copy_(c)
        return best

    # -- checkpoints -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        optim = self.optimizer.state_dict()
        tensors = {f"param.{i}": p.detach().cpu() for i, p in enumerate(self.policy.vectors)}
        tensors |= {f"best.{i}": b.cpu() for i, b in enumerate(self._best)}
        for index, slots in optim["state"].items():
            tensors |= {f"optim.{index}.{key}": value.cpu() for key, value in slots.items()}
        blob = base64.b64encode(save_tensors({k: v.contiguous() for k, v in tensors.items()})).decode()
        # None until a validation has run: PostgreSQL's json cannot store -inf
        best = self.best_score if math.isfinite(self.best_score) else None
        return {"iteration": self.iteration, "best_iteration": self.best_iteration, "best_score": best,
                "stale": self.stale, "curve": self.curve, "tensors": blob,
                "param_groups": optim["param_groups"]}

    def _restore(self, state: dict[str, Any]) -> None:
        tensors = load_tensors(base64.b64decode(state["tensors"]))
        with torch.no_grad():
            for i, p in enumerate(self.policy.vectors):
                p.copy_(tensors[f"param.{i}"])
        self._best = [tensors[f"best.{i}"].to(self.backend.device) for i in range(len(self.policy.vectors))]
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, slot = key.split(".", 2)
                slots.setdefault(int(index), {})[slot] = value
        self.optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
        self.iteration, self.best_iteration = state["iteration"], state["best_iteration"]
        self.best_score = state["best_score"] if state["best_score"] is not None else float("-inf")
        self.stale, self.curve = state["stale"], state["curve"]


def movement(z: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> dict[str, Any]:
    """How far training moved z from where it started: max and mean |dz| overall and per matrix (a run
    whose z barely moved cannot have changed the model, whatever its scores say)."""
    moved = {n: (z[n].detach().cpu() - start[n].cpu()).abs() for n in sorted(z)}
    per = {n: (float(d.max()), float(d.mean())) for n, d in moved.items()}
    every = torch.cat([d.flatten() for d in moved.values()])
    return {"max_abs_dz": float(every.max()), "mean_abs_dz": float(every.mean()),
            "mean_abs_dz_relative": float(every.mean() / torch.cat([start[n].abs().flatten() for n in start]).mean()),
            "per_matrix": {n: [round(a, 6), round(b, 6)] for n, (a, b) in per.items()}}


def _predicting(cont: list[int], keep: int) -> torch.Tensor:
    """Positions, among the last ``keep`` logits of a left-padded row ending in ``cont``, that predict its
    tokens: the logits at position t predict token t + 1."""
    return torch.arange(keep - len(cont) - 1, keep - 1)


def _publish(registry: Registry, spec: TrainSpec, task: Task, z: dict[str, torch.Tensor], trainer: PolicyTrainer,
             validation: EvalResult, test: EvalResult, job_id: int | None) -> ExpertVersion:
    info = registry.get_model(spec.model)
    hyper = {k: v for k, v in spec.to_dict().items() if k not in ("model", "task", "data_dir", "name", "device")}
    provenance = {"method": "reinforce", "hyperparameters": hyper, "best_iteration": trainer.best_iteration,
                  "movement": movement(z, trainer.initial_z()),
                  "curve": [{k: e[k] for k in ("iteration", "reward", "kl", "validation") if k in e}
                            for e in trainer.curve]}
    tags = {"trained": "reinforce"}
    if task.name == "dispatch":  # the classification expert the two-pass strategies look for
        tags["role"] = "dispatcher"
    return registry.publish_derived(DerivedExpert(
        {n: v.detach().cpu().numpy() for n, v in z.items()}, model=spec.model, task=task.name, source=Source.NATIVE,
        name=spec.name or f"{task.name}-{info.handle}", renormalize=trainer.policy.renormalize, provenance=provenance,
        measurements=(validation.measurement(), test.measurement()),
        lineage=(Lineage(None, Relation.TRAINED_FROM, None, {"model": info.name, **hyper}),), tags=tags,
        job_id=job_id))
