"""What a finished job records: typed results, stored as JSON in the job's row and read back as they were.

Every job kind's spec names its record (``JobSpec.record``): the library call
that runs the job returns one, the runner stores :meth:`JobRecord.to_dict`, and
whoever reads the job (the CLI, the demo, the bench) gets it back with
:meth:`JobRecord.from_dict`, fields and not keys. The records hold plain data
only, so reading one loads no torch. The shared parts live here: a score on a
task (:class:`ScoreRecord`) and a paired comparison (:class:`PairedRecord`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

R = TypeVar("R", bound="JobRecord")


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """Base of every record. Fields that are records (or lists of records) nest; everything else is JSON."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The record stored as ``data``. Keys it does not know are ignored and optional fields a row written
        by an older t2reg lacks take their defaults, so every stored job stays readable."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _typed(hints[f.name], data[f.name])
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, JobRecord):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` read as ``hint`` says: a record (possibly optional, possibly in a list) from its dict."""
    if value is None:
        return None
    record = _record_type(hint)
    if record is not None:
        return record.from_dict(value)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        record = _record_type(item)
        if record is not None:
            return [record.from_dict(v) for v in value]
    return value


def _record_type(hint: Any) -> type[JobRecord] | None:
    candidates = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, JobRecord):
            return candidate
    return None


@dataclasses.dataclass(frozen=True)
class ScoreRecord(JobRecord):
    """A score on a task's split, with its interval, the trivial baseline and the spread of predictions
    (an :class:`~t2reg.adaptation.evaluation.results.EvalResult` without its per-question rows)."""

    task: str
    split: str
    metric: str
    mode: str
    n: int
    correct: int
    score: float
    interval95: list[float]
    seconds: float
    accuracy_norm: float | None = None
    mean_correct_logprob: float | None = None
    protocol: dict[str, Any] | None = None
    constant_baseline: dict[str, Any] | None = None  # {"answer", "accuracy"} of always giving the most common answer
    prediction_histogram: dict[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class PairedRecord(JobRecord):
    """Two conditions on the same questions, compared question by question (y minus x)."""

    x: str
    y: str
    n: int
    accuracy_x: float
    accuracy_y: float
    delta: float
    delta_ci95: list[float]
    mcnemar_p: float
    only_x: int
    only_y: int
    protocol: dict[str, Any] | None = None
    logprob_delta: float | None = None
    logprob_delta_ci95: list[float] | None = None
    constant_baseline: dict[str, Any] | None = None  # {"answer", "accuracy"} on the paired questions
    predictions_x: dict[str, int] | None = None  # how often each side predicted each option (multiple choice)
    predictions_y: dict[str, int] | None = None
    # the right answer's log-probability among its options (moves with skill, not with drift), y minus x
    choice_logprob_delta: float | None = None
    choice_logprob_delta_ci95: list[float] | None = None
