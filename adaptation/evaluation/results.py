"""What an evaluation produced: counts, the score, its 95% interval, and every output."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2reg.adaptation.tasks import SPLIT_SEED
from t2reg.expert_file import Metric
from t2reg.files import land_text

LOGPROB_METRIC = "logprob"


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
        land_text(path, "".join(json.dumps(row) + "\n" for row in self.outputs))

    @classmethod
    def from_outputs(cls, task: str, split: str, metric: str, mode: str, outputs: list[dict[str, Any]],
                     seconds: float) -> "EvalResult":
        """Counts and the mean log-probability of the right answers, from per-example outputs."""
        correct = sum(o["correct"] for o in outputs)
        logprobs = [o["correct_logprob"] for o in outputs if "correct_logprob" in o]
        return cls(task, split, metric, mode, len(outputs), correct, seconds,
                   mean_correct_logprob=sum(logprobs) / len(logprobs) if logprobs else None, outputs=outputs)


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sane at 0 and n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
