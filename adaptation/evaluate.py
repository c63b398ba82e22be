"""Scoring a backend on a task: generation or option log-likelihood, with a 95% interval."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from t2reg.adaptation.backends import Backend
from t2reg.adaptation.datasets import LETTERS, SPLIT_SEED, Example
from t2reg.adaptation.tasks import Task
from t2reg.errors import InvalidInputError

MODES = ("auto", "generate", "choice")
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
             progress: Progress | None = None) -> EvalResult:
    """Score ``examples``; every output is kept for ``--save-outputs``."""
    mode = resolve_mode(task, mode)
    start = time.monotonic()
    run = _choice if mode == "choice" else _generate
    outputs = run(backend, task, list(examples), progress or (lambda it: it))
    correct = sum(o["correct"] for o in outputs)
    logprobs = [o["correct_logprob"] for o in outputs if "correct_logprob" in o]
    return EvalResult(task.name, split, task.metric, mode, len(outputs), correct, time.monotonic() - start,
                      mean_correct_logprob=sum(logprobs) / len(logprobs) if logprobs else None, outputs=outputs)


def _generate(backend: Backend, task: Task, examples: list[Example], progress: Progress) -> list[dict]:
    outputs = []
    chunk = 16
    for start in progress(range(0, len(examples), chunk)):
        batch = examples[start : start + chunk]
        texts = backend.generate([backend.render(task.prompt(ex)) for ex in batch], task.max_new_tokens, task.stop)
        for ex, text in zip(batch, texts):
            outputs.append({"id": ex.id, "output": text, "answer": ex.answer, "correct": bool(task.check(ex, text))})
    return outputs


def choice_prefix(backend: Backend, task: Task, ex: Example) -> str:
    return backend.render(task.prompt(ex)) + "The answer is ("


def _choice(backend: Backend, task: Task, examples: list[Example], progress: Progress) -> list[dict]:
    outputs = []
    chunk = 32
    for start in progress(range(0, len(examples), chunk)):
        batch = examples[start : start + chunk]
        requests = [(choice_prefix(backend, task, ex), LETTERS[i]) for ex in batch for i in range(len(ex.choices))]
        scores = iter(backend.loglikelihood(requests))
        for ex in batch:
            row = [next(scores) for _ in ex.choices]
            best = max(range(len(row)), key=lambda i: (row[i], -i))
            truth = LETTERS.index(ex.answer)
            outputs.append({"id": ex.id, "output": LETTERS[best], "answer": ex.answer, "correct": best == truth,
                            "logprobs": row, "correct_logprob": row[truth]})
    return outputs
