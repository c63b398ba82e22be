"""Scoring a backend on a task: generation or option log-likelihood, with a 95% interval."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from t2reg.adaptation.backends import Backend
from t2reg.adaptation.datasets import LETTERS, SPLIT_SEED, Example
from t2reg.adaptation.tasks import Task
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Metric
from t2reg.spectra import Spectra

MODES = ("auto", "generate", "choice")
LOGPROB_METRIC = "logprob"
Progress = Callable[[Iterable], Iterable]


@dataclass
class EvalResult:
    task: str
    split: str
    metric: str
    mode: str
    n: int
    correct: int
    seconds: float
    split_seed: int = SPLIT_SEED
    mean_correct_logprob: float | None = None  # choice mode: mean log-probability of the right letter
    outputs: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def score(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {"task": self.task, "split": self.split, "metric": self.metric, "mode": self.mode, "n": self.n,
                "correct": self.correct, "score": self.score, "interval95": [low, high], "seconds": self.seconds,
                "split_seed": self.split_seed, "mean_correct_logprob": self.mean_correct_logprob}

    def metrics(self, split: str | None = None) -> list[Metric]:
        """What the registry records: the task's metric and, in choice mode, ``logprob`` (the mean
        log-probability of the right option), which moves even when no answer flips."""
        split = split or self.split
        out = [Metric(self.task, self.metric, self.score, split, self.n)]
        if self.mean_correct_logprob is not None:
            out.append(Metric(self.task, LOGPROB_METRIC, self.mean_correct_logprob, split, self.n))
        return out

    def save_outputs(self, path: Path) -> None:
        with Path(path).open("w") as fh:
            for row in self.outputs:
                fh.write(json.dumps(row) + "\n")


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sane at 0 and n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def resolve_mode(task: Task, mode: str) -> str:
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "auto":
        return "choice" if task.multiple_choice else "generate"
    if mode == "choice" and not task.multiple_choice:
        raise InvalidInputError(f"{task.name} is not multiple choice; use --mode generate")
    return mode


def evaluate(backend: Backend, task: Task, examples: Sequence[Example], split: str = "test", mode: str = "auto",
             progress: Progress | None = None, reference_logprob: bool = False) -> EvalResult:
    """Score ``examples``; every output is kept for ``--save-outputs``.

    Choice mode always records the log-probability of the right option. With
    ``reference_logprob``, generation records the reference answer's mean
    per-token log-probability too (one more forward pass per example), so a
    search can break ties on accuracy there as well.
    """
    mode = resolve_mode(task, mode)
    start = time.monotonic()
    examples = list(examples)
    outputs = _RUNNERS[mode](backend, task, examples, progress or (lambda it: it), None)
    if reference_logprob and mode == "generate":
        _reference_logprobs(backend, task, examples, outputs, None)
    return _result(task, split, mode, outputs, time.monotonic() - start)


def evaluate_population(backend: Backend, task: Task, examples: Sequence[Example], spectra: Spectra,
                        mixtures: Sequence[Mapping[str, Any]], renormalize: str = "nuclear", split: str = "shots",
                        mode: str = "auto", reference_logprob: bool = False) -> list[EvalResult]:
    """Score every mixture on ``examples`` in shared batches (one forward pass serves many candidates).

    Row i of a batch runs with its own mixture in factored form (see
    :mod:`t2reg.adaptation.population`); the backend must support it.
    """
    mode = resolve_mode(task, mode)
    start = time.monotonic()
    examples = list(examples)
    expanded = [ex for _ in mixtures for ex in examples]
    variants = [p for p in range(len(mixtures)) for _ in examples]
    with backend.population(spectra, mixtures, renormalize):
        outputs = _RUNNERS[mode](backend, task, expanded, lambda it: it, variants)
        if reference_logprob and mode == "generate":
            _reference_logprobs(backend, task, expanded, outputs, variants)
    seconds = (time.monotonic() - start) / max(1, len(mixtures))
    n = len(examples)
    return [_result(task, split, mode, outputs[p * n : (p + 1) * n], seconds) for p in range(len(mixtures))]


def _result(task: Task, split: str, mode: str, outputs: list[dict], seconds: float) -> EvalResult:
    correct = sum(o["correct"] for o in outputs)
    logprobs = [o["correct_logprob"] for o in outputs if "correct_logprob" in o]
    return EvalResult(task.name, split, task.metric, mode, len(outputs), correct, seconds,
                      mean_correct_logprob=sum(logprobs) / len(logprobs) if logprobs else None, outputs=outputs)


def _chunks(backend: Backend, n: int, least: int, progress: Progress) -> Iterable[slice]:
    # Hand the backend at least one full batch at a time, so a population fills its batches.
    size = max(least, getattr(backend, "batch_size", least))
    return (slice(start, start + size) for start in progress(range(0, n, size)))


def _generate(backend: Backend, task: Task, examples: list[Example], progress: Progress,
              variants: list[int] | None) -> list[dict]:
    outputs = []
    for part in _chunks(backend, len(examples), 16, progress):
        batch = examples[part]
        extra = {"variants": variants[part]} if variants is not None else {}
        texts = backend.generate([backend.render(task.prompt(ex)) for ex in batch], task.max_new_tokens, task.stop,
                                 **extra)
        for ex, text in zip(batch, texts):
            outputs.append({"id": ex.id, "output": text, "answer": ex.answer, "correct": bool(task.check(ex, text))})
    return outputs


def add_reference_logprobs(backend: Backend, task: Task, examples: Sequence[Example], result: EvalResult) -> EvalResult:
    """``result`` (a generation run on ``examples``) with its tie-breaker filled in, scored with the
    backend's current weights."""
    _reference_logprobs(backend, task, list(examples), result.outputs, None)
    logprobs = [o["correct_logprob"] for o in result.outputs]
    return replace(result, mean_correct_logprob=sum(logprobs) / len(logprobs) if logprobs else None)


def _reference_logprobs(backend: Backend, task: Task, examples: list[Example], outputs: list[dict],
                        variants: list[int] | None) -> None:
    requests = [(backend.render(task.prompt(ex)), ex.solution or ex.answer) for ex in examples]
    extra = {"variants": variants} if variants is not None else {}
    for out, (context, reference), total in zip(outputs, requests, backend.loglikelihood(requests, **extra)):
        out["correct_logprob"] = total / max(1, len(backend.split_continuation(context, reference)[1]))


def choice_prefix(backend: Backend, task: Task, ex: Example) -> str:
    return backend.render(task.prompt(ex)) + "The answer is ("


def _choice(backend: Backend, task: Task, examples: list[Example], progress: Progress,
            variants: list[int] | None) -> list[dict]:
    outputs = []
    for part in _chunks(backend, len(examples), 32, progress):
        batch = examples[part]
        requests = [(choice_prefix(backend, task, ex), LETTERS[i]) for ex in batch for i in range(len(ex.choices))]
        extra = {}
        if variants is not None:
            extra["variants"] = [v for ex, v in zip(batch, variants[part]) for _ in ex.choices]
        scores = iter(backend.loglikelihood(requests, **extra))
        for ex in batch:
            row = [next(scores) for _ in ex.choices]
            best = max(range(len(row)), key=lambda i: (row[i], -i))
            truth = LETTERS.index(ex.answer)
            outputs.append({"id": ex.id, "output": LETTERS[best], "answer": ex.answer, "correct": best == truth,
                            "logprobs": row, "correct_logprob": row[truth]})
    return outputs


_RUNNERS = {"generate": _generate, "choice": _choice}
