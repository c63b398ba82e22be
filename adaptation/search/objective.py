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

Nothing is scored twice: a member that names a mixture scored on the same examples before takes that
score from :attr:`MixtureScorer.memo`, which travels in the job's checkpoint so a resumed search reuses
exactly what the uninterrupted one would. Members name one mixture when they are equal, or equal once
read (:meth:`MixtureScorer.key`): CEM clamps members to its bounds, so many land on the same corner, and
strength 0 is the base model whatever the weights; under nuclear renormalisation only the weights'
proportions matter, so a one-expert pool's weight does not matter at all. The best member's exact-path
result at the end is read back when the search scored it so.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from t2reg.adaptation.backends import Backend, Capability
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.scoring import (
    Progress,
    add_reference_logprobs,
    evaluate,
    evaluate_population,
    measure,
)
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

    def __init__(self, backend: Backend, task: Task, spectra: Spectra, vectors: Sequence[dict[str, Any]], rule: str,
                 shape: tuple[int, ...], normalize: bool = False, mode: str = "auto", space: str = "z") -> None:
        if mode not in POPULATION_EVAL_MODES:
            raise InvalidInputError(f"{{population_eval}} must be one of {', '.join(POPULATION_EVAL_MODES)}",
                                    options=["population_eval"])
        if mode == "batched" and not backend.supports(Capability.POPULATION):
            raise InvalidInputError(f"the {backend.name} backend cannot score a population in one pass; "
                                    "score candidates one at a time ({population_eval} sequential)",
                                    options=["population_eval"])
        if space not in MIX_SPACES:
            raise InvalidInputError(f"{{mix_space}} must be one of {', '.join(MIX_SPACES)}", options=["mix_space"])
        self.backend, self.task, self.spectra, self.vectors = backend, task, spectra, list(vectors)
        self.rule, self.shape, self.normalize, self.mode, self.space = rule, shape, normalize, mode, space
        # A strengthened mixture is already the singular values' final scaling: applied without renormalising.
        self.apply_rule = "none" if space == "strength" else rule
        self.timings: dict[str, float] = {}  # seconds per candidate, as measured by auto
        self.memo: dict[str, list] = {}  # a member's key (see key) -> its score (see remembered)
        self._exact: dict[str, EvalResult] = {}  # the same key -> its exact-path result, in this process
        self.reused = 0  # evaluations not run because the same mixture's score was at hand

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

    def key(self, candidate: Candidate, examples: Sequence[Example]) -> str:
        """What the candidate's score depends on besides the model: the mixture it names (in canonical form)
        and the examples."""
        alpha, strength = np.asarray(candidate.alpha, dtype=np.float64), candidate.strength
        if strength is not None and strength == 0:  # s = 0: z'' = 1 everywhere, the base model
            alpha = np.zeros_like(alpha)
        elif self.rule == "nuclear" and self.space in ("z", "strength"):
            # n(sum_k a_k z_k) is the same for every positive multiple of a column's weights
            total = alpha.sum(axis=0, keepdims=True)
            alpha = np.divide(alpha, total, out=np.zeros_like(alpha), where=total > 0)
        digest = hashlib.sha256(np.ascontiguousarray(np.round(alpha, 9) + 0.0).tobytes())  # + 0.0: no -0.0
        digest.update(repr(None if strength is None else round(strength, 9) + 0.0).encode())
        digest.update("\0".join(ex.id for ex in examples).encode())
        return digest.hexdigest()[:32]

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
        """One mixture on the exact path (weights rewritten), read back if this process scored it so already."""
        key = self.key(candidate, examples)
        if key in self._exact:
            self.reused += 1
            return self._exact[key]
        return self._sequential([self._applicable(candidate)], [0], examples, [key])[0]

    def measure(self, candidate: Candidate, questions: Questions, progress: Progress | None = None) -> EvalResult:
        """One mixture on ``questions``, under the protocol that names them (for the record)."""
        with self.backend.patched(self.spectra, self._applicable(candidate), self.apply_rule):
            return measure(self.backend, questions, progress=progress)

    def _applicable(self, candidate: Candidate) -> dict[str, torch.Tensor]:
        mixed = self.mixture(candidate)
        if mixed is None:
            raise InvalidInputError("the mixture zeroes some matrix; it cannot be applied")
        return mixed

    def objective(self, population: np.ndarray, examples: Sequence[Example]) -> list[tuple[float, float]]:
        """(accuracy, mean log-likelihood of the right answers) per member; unusable mixtures rank last, and a
        mixture scored before is not scored again."""
        candidates = [self.candidate(m) for m in population]
        mixtures = [self.mixture(c) for c in candidates]
        keys = [self.key(c, examples) if m is not None else None for c, m in zip(candidates, mixtures)]

        def score_these(indices: list[int]) -> dict[int, tuple[float, float]]:
            results: dict[int, EvalResult] = {}
            if self.mode == "auto":
                self._calibrate(mixtures, indices, examples, results, keys)
            elif self.mode == "batched":
                results.update(self._batched(mixtures, indices, examples))
            else:
                results.update(self._sequential(mixtures, indices, examples, keys))
            return {i: _as_score(r) for i, r in results.items()}

        scores, self.reused = remembered(keys, self.memo, score_these, self.reused)
        return scores

    def _sequential(self, mixtures, indices, examples, keys=None) -> dict[int, EvalResult]:
        out = {}
        for i in indices:
            with self.backend.patched(self.spectra, mixtures[i], self.apply_rule):
                out[i] = evaluate(self.backend, self.task, examples)
            if keys is not None:
                self._exact[keys[i]] = out[i]
        return out

    def _batched(self, mixtures, indices, examples) -> dict[int, EvalResult]:
        if not indices:
            return {}
        scored = dict(zip(indices, evaluate_population(self.backend, self.task, examples, self.spectra,
                                                       [mixtures[i] for i in indices], self.apply_rule)))
        for i in indices:
            if scored[i].mode == "generate":
                # The tie-breaker is prefill over prompt + reference (~thousands of tokens per candidate), far
                # past the factored path's break-even: score it with the weights rewritten, as sequential does.
                with self.backend.patched(self.spectra, mixtures[i], self.apply_rule):
                    scored[i] = add_reference_logprobs(self.backend, self.task, examples, scored[i])
        return scored

    def _calibrate(self, mixtures, valid, examples, results, keys) -> None:
        first = valid[:_CALIBRATION_SEQUENTIAL]
        probe = valid[_CALIBRATION_SEQUENTIAL : _CALIBRATION_SEQUENTIAL + _CALIBRATION_BATCHED]
        rest = valid[_CALIBRATION_SEQUENTIAL + _CALIBRATION_BATCHED :]
        results.update(self._timed("sequential", self._sequential, mixtures, first, examples))
        if not self.backend.supports(Capability.POPULATION):
            self.mode = "sequential"  # nothing to measure: this backend scores one candidate at a time
            results.update(self._sequential(mixtures, probe + rest, examples, keys))
            return
        if not first or len(probe) < 2:  # too few to measure a batch; decide next generation
            results.update(self._sequential(mixtures, probe + rest, examples, keys))
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


def remembered(keys: Sequence[str | None], memo: dict[str, list],
               score: Callable[[list[int]], dict[int, tuple[float, float]]], reused: int = 0
               ) -> tuple[list[tuple[float, float]], int]:
    """Each member's score (WORST where its key is None, an unusable mixture): from ``memo``, or from
    ``score`` called once on the first member of each key the memo lacks; ``memo`` learns them (as
    JSON-ready lists without infinities: PostgreSQL's json cannot store them). Returns the scores and
    ``reused`` plus the evaluations saved."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None and key not in memo:
            first.setdefault(key, i)
    for i, (accuracy, tie) in score(sorted(first.values())).items():
        memo[keys[i]] = [accuracy, tie if math.isfinite(tie) else None]
    scores = [WORST if key is None else (memo[key][0], _finite_or_worst(memo[key][1])) for key in keys]
    return scores, reused + sum(key is not None for key in keys) - len(first)


def _finite_or_worst(value: float | None) -> float:
    return float("-inf") if value is None else value


def _as_score(result: EvalResult) -> tuple[float, float]:
    return result.score, result.mean_correct_logprob if result.mean_correct_logprob is not None else 0.0
