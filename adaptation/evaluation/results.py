"""What an evaluation produced: counts, the score and its 95% interval, the trivial baselines beside it,
and every question's result.

Each row of :attr:`EvalResult.outputs` is one question: ``id``, ``prediction``
(the option letter chosen, or the answer read off a generation), ``answer``,
``correct``, ``logprob`` (the log-probability of the right answer; for
generation, the reference's mean per-token log-probability) and, by mode,
``output`` (the generated text) or ``option_logprobs`` (and, in cloze mode,
``correct_norm``: right by byte-length-normalised log-likelihood).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2reg.expert_file import Metric
from t2reg.files import land_text
from t2reg.protocols import Measurement, Protocol
from t2reg.question_results import (ConstantAnswer, constant_answer, dumps_results, is_multiple_choice,
                                    prediction_histogram)
from t2reg.records import ScoreRecord
from t2reg.stats import wilson_interval

LOGPROB_METRIC = "logprob"
NORM_METRIC = "accuracy_norm"
DOMINANT_SHARE = 0.5  # one option taking more than this share of predictions gets a warning


@dataclass
class EvalResult:
    task: str
    split: str
    metric: str
    mode: str
    n: int
    correct: int
    seconds: float
    protocol: Protocol | None = None
    mean_correct_logprob: float | None = None  # mean log-probability of the right answers
    correct_norm: int | None = None  # cloze: right by byte-length-normalised log-likelihood
    outputs: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def score(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def score_norm(self) -> float | None:
        return None if self.correct_norm is None or not self.n else self.correct_norm / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    @property
    def multiple_choice(self) -> bool:
        return is_multiple_choice(self.outputs)

    def constant_baseline(self) -> ConstantAnswer | None:
        """The most common right answer in the scored questions, and the accuracy of always giving it."""
        return constant_answer(self.outputs)

    def prediction_histogram(self) -> dict[str, int] | None:
        return prediction_histogram(self.outputs)

    def dominant_prediction(self) -> tuple[str, float] | None:
        """The option predicted more often than :data:`DOMINANT_SHARE` of the time, if one is."""
        histogram = self.prediction_histogram()
        if not histogram or not self.n:
            return None
        option, count = max(histogram.items(), key=lambda item: item[1])
        return (option, count / self.n) if count / self.n > DOMINANT_SHARE else None

    def record(self) -> ScoreRecord:
        """This result as a job records it: everything but the per-question rows."""
        baseline = self.constant_baseline()
        return ScoreRecord(self.task, self.split, self.metric, self.mode, self.n, self.correct, self.score,
                           list(self.interval), self.seconds, self.score_norm, self.mean_correct_logprob,
                           self.protocol.to_dict() if self.protocol else None,
                           None if baseline is None else baseline.to_dict(),
                           self.prediction_histogram())

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_dict()

    def metrics(self, split: str | None = None) -> list[Metric]:
        """What the registry records: the task's metric, ``accuracy_norm`` in cloze mode, and ``logprob``
        (the mean log-probability of the right answer), which moves even when no answer flips."""
        split = split or self.split
        out = [Metric(self.task, self.metric, self.score, split, self.n)]
        if self.score_norm is not None:
            out.append(Metric(self.task, NORM_METRIC, self.score_norm, split, self.n))
        if self.mean_correct_logprob is not None:
            out.append(Metric(self.task, LOGPROB_METRIC, self.mean_correct_logprob, split, self.n))
        return out

    def measurement(self, split: str | None = None) -> Measurement:
        """What the registry records of this run: its metrics, protocol and per-question results."""
        return Measurement(tuple(self.metrics(split)), self.protocol, self.results_blob())

    def results_blob(self) -> bytes:
        """The per-question results as the registry keeps them (:mod:`t2reg.question_results`)."""
        return dumps_results(self.outputs)

    def save_outputs(self, path: Path) -> None:
        land_text(path, "".join(json.dumps(row) + "\n" for row in self.outputs))

    @classmethod
    def from_outputs(cls, task: str, split: str, metric: str, mode: str, outputs: list[dict[str, Any]],
                     seconds: float, protocol: Protocol | None = None) -> "EvalResult":
        """Counts and the mean log-probability of the right answers, from per-question rows."""
        correct = sum(bool(o["correct"]) for o in outputs)
        logprobs = [o["logprob"] for o in outputs if o.get("logprob") is not None]
        norm = [o["correct_norm"] for o in outputs if "correct_norm" in o]
        return cls(task, split, metric, mode, len(outputs), correct, seconds, protocol,
                   mean_correct_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
                   correct_norm=sum(norm) if norm else None, outputs=outputs)
