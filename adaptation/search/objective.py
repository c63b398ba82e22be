"""Scoring candidate mixtures on examples: one at a time, or a whole population per pass.

``sequential`` rewrites the adapted matrices once per candidate (m*n*r
multiply-adds per matrix) and runs the examples; ``batched`` leaves the
weights alone and runs every candidate's examples in shared batches with each
row's expert applied in factored form ((m+n)*r per token and matrix, see
:mod:`t2reg.adaptation.patching.population`). Which is faster depends on tokens per
candidate and on whether the forward pass is memory- or compute-bound, so
``auto`` measures: in its first generation it scores two candidates
sequentially and up to four batched, keeps whichever cost less per candidate,
and scores the rest of that generation with it. The choice is part of the job's checkpoint, so a resumed run
scores the way the original did. Timings are not reproducible, so two fresh runs (or a run killed
before its first generation was stored) may choose differently; the paths agree to float32 summation
order (~1e-4 in log-likelihood), which can reorder near-ties. Name a mode for bit-identical reruns.

Scores are (accuracy, tie-breaker) under the task's default scoring mode (cloze for ARC): the
tie-breaker is the mean log-probability of the right option, or of the reference answer's tokens (one
more forward pass per example) in generation mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from t2reg.adaptation.backends import Backend, Capability
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.scoring import add_reference_logprobs, evaluate, evaluate_population, measure
from t2reg.adaptation.patching import MIX_SPACES, STRENGTH_MAX, mix, mix_logits, scaled_spectrum, strengthen
from t2reg.adaptation.search.spec import POPULATION_EVAL_MODES
from t2reg.adaptation.tasks import Example, Task
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra

WORST = (float("-inf"), float("-inf"))
_CALIBRATION_SEQUENTIAL, _CALIBRATION_BATCHED = 2, 4


@dataclass(frozen=True)
class Candidate:
    """One search member read as a mixture: weights shaped (K,) or (K, M), and the strength coordinate
    (``strength`` space only)."""

    alpha: np.ndarray
    strength: float | None = None


class MixtureScorer:
    """Turns search members (flat vectors) into mixtures, and mixtures into scores on examples.

    A member holds the K (or K x M) mixture weights, plus, in the ``strength`` space, one last coordinate
    in [0, 1] read as s = STRENGTH_MAX * coordinate (see :mod:`t2reg.adaptation.patching.mixing`).
    """

    def __init__(self, engine: Backend, task: Task, spectra: Spectra, vectors: Sequence[dict[str, Any]], rule: str,
                 shape: tuple[int, ...], normalize: bool = False, mode: str = "auto", space: str = "z") -> None:
        if mode not in POPULATION_EVAL_MODES:
            raise InvalidInputError(f"{{population_eval}} must be one of {', '.join(POPULATION_EVAL_MODES)}",
                                    options=["population_eval"])
        if mode == "batched" and not engine.supports(Capability.POPULATION):
            raise InvalidInputError(f"the {engine.name} backend cannot score a population in one pass; "
                                    "score candidates one at a time ({population_eval} sequential)",
                                    options=["population_eval"])
        if space not in MIX_SPACES:
            raise InvalidInputError(f"{{mix_space}} must be one of {', '.join(MIX_SPACES)}", options=["mix_space"])
        self.engine, self.task, self.spectra, self.vectors = engine, task, spectra, list(vectors)
        self.rule, self.shape, self.normalize, self.mode, self.space = rule, shape, normalize, mode, space
        # A strengthened mixture is already the singular values' final scaling: applied without renormalising.
        self.apply_rule = "none" if space == "strength" else rule
        self.timings: dict[str, float] = {}  # seconds per candidate, as measured by auto

    @property
    def dim(self) -> int:
        """Coordinates per member."""
        return int(np.prod(self.shape)) + (1 if self.space == "strength" else 0)

    def initial_mean(self) -> np.ndarray:
        """Every weight at 1/K (the uniform mixture, per vector or per matrix column); strength at s = 1."""
        start = np.full(self.dim, 1.0 / self.shape[0])
        if self.space == "strength":
            start[-1] = 1.0 / STRENGTH_MAX
        return start

    def candidate(self, member: np.ndarray) -> Candidate:
        """The member as mixture weights (each column summing to 1 if normalising) and strength."""
        member = np.asarray(member, dtype=np.float64)
        alpha = member[: int(np.prod(self.shape))].reshape(self.shape)
        if self.normalize:
            total = alpha.sum(axis=0, keepdims=True)
            alpha = np.divide(alpha, total, out=np.zeros_like(alpha), where=total > 0)
        return Candidate(alpha, STRENGTH_MAX * float(member[-1]) if self.space == "strength" else None)

    def mixture(self, candidate: Candidate) -> dict[str, torch.Tensor] | None:
        """z per matrix, to apply with :attr:`apply_rule`; None when it cannot be applied (e.g. it zeroes a
        matrix).

        In per-matrix mode a matrix whose column of alpha is all zero keeps its
        base weights (z = 1): with K experts and M matrices in the hundreds, some
        column of a sampled member is nearly always clamped to zero, and ruling
        every such member out would leave nothing to search.
        """
        alpha = candidate.alpha
        mixed = mix_logits(self.vectors, alpha) if self.space == "logits" else mix(self.vectors, alpha)
        if alpha.ndim == 2:
            names = list(mixed)
            for m in np.flatnonzero(~alpha.any(axis=0)):
                mixed[names[m]] = torch.ones_like(mixed[names[m]])
        try:
            for name, z in mixed.items():
                scaled_spectrum(self.spectra[name].S, z, self.rule, name)
        except InvalidInputError:
            return None
        if self.space == "strength":
            mixed = strengthen(mixed, {n: self.spectra[n].S for n in mixed}, self.rule, candidate.strength)
        return mixed

    def score(self, candidate: Candidate, examples: Sequence[Example]) -> EvalResult:
        """One mixture on the exact path (weights rewritten)."""
        with self.engine.patched(self.spectra, self._applicable(candidate), self.apply_rule):
            return evaluate(self.engine, self.task, examples)

    def measure(self, candidate: Candidate, questions: Questions) -> EvalResult:
        """One mixture on ``questions``, under the protocol that names them (for the record)."""
        with self.engine.patched(self.spectra, self._applicable(candidate), self.apply_rule):
            return measure(self.engine, questions)

    def _applicable(self, candidate: Candidate) -> dict[str, torch.Tensor]:
        mixed = self.mixture(candidate)
        if mixed is None:
            raise InvalidInputError("the mixture zeroes some matrix; it cannot be applied")
        return mixed

    def objective(self, population: np.ndarray, examples: Sequence[Example]) -> list[tuple[float, float]]:
        """(accuracy, mean log-likelihood of the right answers) per member; unusable mixtures rank last."""
        mixtures = [self.mixture(self.candidate(m)) for m in population]
        valid = [i for i, m in enumerate(mixtures) if m is not None]
        results: dict[int, EvalResult] = {}
        if self.mode == "auto":
            self._calibrate(mixtures, valid, examples, results)
        elif self.mode == "batched":
            results.update(self._batched(mixtures, valid, examples))
        else:
            results.update(self._sequential(mixtures, valid, examples))
        return [_as_score(results[i]) if i in results else WORST for i in range(len(population))]

    def _sequential(self, mixtures, indices, examples) -> dict[int, EvalResult]:
        out = {}
        for i in indices:
            with self.engine.patched(self.spectra, mixtures[i], self.apply_rule):
                out[i] = evaluate(self.engine, self.task, examples)
        return out

    def _batched(self, mixtures, indices, examples) -> dict[int, EvalResult]:
        if not indices:
            return {}
        scored = dict(zip(indices, evaluate_population(self.engine, self.task, examples, self.spectra,
                                                       [mixtures[i] for i in indices], self.apply_rule)))
        for i in indices:
            if scored[i].mode == "generate":
                # The tie-breaker is prefill over prompt + reference (~thousands of tokens per candidate), far
                # past the factored path's break-even: score it with the weights rewritten, as sequential does.
                with self.engine.patched(self.spectra, mixtures[i], self.apply_rule):
                    scored[i] = add_reference_logprobs(self.engine, self.task, examples, scored[i])
        return scored

    def _calibrate(self, mixtures, valid, examples, results) -> None:
        first = valid[:_CALIBRATION_SEQUENTIAL]
        probe = valid[_CALIBRATION_SEQUENTIAL : _CALIBRATION_SEQUENTIAL + _CALIBRATION_BATCHED]
        rest = valid[_CALIBRATION_SEQUENTIAL + _CALIBRATION_BATCHED :]
        results.update(self._timed("sequential", self._sequential, mixtures, first, examples))
        if not self.engine.supports(Capability.POPULATION):
            self.mode = "sequential"  # nothing to measure: this backend scores one candidate at a time
            results.update(self._sequential(mixtures, probe + rest, examples))
            return
        if not first or len(probe) < 2:  # too few to measure a batch; decide next generation
            results.update(self._sequential(mixtures, probe + rest, examples))
            return
        try:
            results.update(self._timed("batched", self._batched, mixtures, probe, examples))
        except InvalidInputError:  # this architecture cannot batch a population (e.g. no nn.Linear layers)
            self.timings["batched"] = float("inf")
        self.mode = min(self.timings, key=self.timings.get)
        chosen = self._batched if self.mode == "batched" else self._sequential
        results.update(chosen(mixtures, [i for i in probe + rest if i not in results], examples))

    def _timed(self, label, run, mixtures, indices, examples) -> dict[int, EvalResult]:
        start = time.perf_counter()
        out = run(mixtures, indices, examples)
        if indices:
            self.timings[label] = (time.perf_counter() - start) / len(indices)
        return out


def _as_score(result: EvalResult) -> tuple[float, float]:
    return result.score, result.mean_correct_logprob if result.mean_correct_logprob is not None else 0.0
