"""Paired comparison of two conditions on the same questions, from per-question results already at hand.

The statistics ``t2reg compare`` reports (:mod:`t2reg.adaptation.evaluation.compare`, which measures a side
that has no recorded results first) and what reads recorded results back, kept apart from it so that a reader
of the registry (``t2reg ui``'s compare page) loads no model code and can never start an evaluation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.errors import InvalidInputError
from t2reg.protocols import FULL, Protocol
from t2reg.question_results import (ConstantAnswer, choice_logprob, constant_answer, is_multiple_choice,
                                    prediction_histogram)
from t2reg.records import PairedRecord
from t2reg.registry import Registry
from t2reg.stats import mcnemar_exact, paired_bootstrap

BASE_PREFIX = "base:"


@dataclass(frozen=True)
class Subject:
    """One side of a comparison: an expert version, or a base model with no expert (``base:MODEL``)."""

    ref: str | None = None
    model: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Subject":
        if text.startswith(BASE_PREFIX):
            model = text.removeprefix(BASE_PREFIX)
            if not model:
                raise InvalidInputError(f"{text!r} names no model: write base:MODEL")
            return cls(model=model)
        return cls(ref=text)

    def __str__(self) -> str:
        return f"{BASE_PREFIX}{self.model}" if self.model else str(self.ref)


@dataclass
class Comparison:
    x: str
    y: str
    protocol: Protocol
    n: int  # questions both were scored on
    accuracy_x: float
    accuracy_y: float
    only_x: int  # right for X, wrong for Y
    only_y: int
    mcnemar_p: float
    delta_ci95: tuple[float, float]
    logprob_delta: float | None
    logprob_delta_ci95: tuple[float, float] | None
    # The trivial explanations beside the difference (multiple choice only): always giving the most common
    # right answer on these questions, and how each side's predictions spread over the options.
    constant: ConstantAnswer | None = None
    predictions_x: dict[str, int] | None = None
    predictions_y: dict[str, int] | None = None
    # The right answer's log-probability among its options (multiple choice only), y minus x: it moves when
    # the right option gains on the others, where logprob_delta also moves with every option's likelihood.
    choice_logprob_delta: float | None = None
    choice_logprob_delta_ci95: tuple[float, float] | None = None

    @property
    def delta(self) -> float:
        return self.accuracy_y - self.accuracy_x

    def record(self) -> PairedRecord:
        return PairedRecord(self.x, self.y, self.n, self.accuracy_x, self.accuracy_y, self.delta,
                            list(self.delta_ci95), self.mcnemar_p, self.only_x, self.only_y,
                            self.protocol.to_dict() if self.protocol else None, self.logprob_delta,
                            list(self.logprob_delta_ci95) if self.logprob_delta_ci95 else None,
                            None if self.constant is None else self.constant.to_dict(),
                            self.predictions_x, self.predictions_y, self.choice_logprob_delta,
                            list(self.choice_logprob_delta_ci95) if self.choice_logprob_delta_ci95 else None)

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_dict()


def pair(x_rows: Sequence[dict[str, Any]], y_rows: Sequence[dict[str, Any]], x: str = "x", y: str = "y",
         protocol: Protocol | None = None, seed: int = 0) -> Comparison:
    """Pair two runs' per-question results by question id and compare them."""
    y_by_id = {row["id"]: row for row in y_rows}
    pairs = [(row, y_by_id[row["id"]]) for row in x_rows if row["id"] in y_by_id]
    if not pairs:
        raise InvalidInputError(f"{x} and {y} share no scored question")
    right_x = [bool(a["correct"]) for a, _ in pairs]
    right_y = [bool(b["correct"]) for _, b in pairs]
    only_x = sum(a and not b for a, b in zip(right_x, right_y))
    only_y = sum(b and not a for a, b in zip(right_x, right_y))
    n = len(pairs)
    lp_diff = _differences(pairs, lambda row: row["logprob"])
    choice_diff = _differences(pairs, choice_logprob)
    constant, predictions_x, predictions_y = _trivial(pairs)
    return Comparison(
        x, y, protocol, n, sum(right_x) / n, sum(right_y) / n, only_x, only_y, mcnemar_exact(only_x, only_y),
        paired_bootstrap([float(b) - float(a) for a, b in zip(right_x, right_y)], seed=seed),
        *_mean_and_interval(lp_diff, seed), constant, predictions_x, predictions_y,
        *_mean_and_interval(choice_diff, seed),
    )


def _differences(pairs: list[tuple[dict[str, Any], dict[str, Any]]],
                 measure: Callable[[dict[str, Any]], float | None]) -> list[float]:
    """y minus x of a per-question measure, over the questions where both sides have it."""
    values = [(measure(a), measure(b)) for a, b in pairs]
    return [float(b) - float(a) for a, b in values if a is not None and b is not None]


def _mean_and_interval(values: list[float], seed: int) -> tuple[float | None, tuple[float, float] | None]:
    """The mean difference and its paired bootstrap 95 % interval; (None, None) with nothing to pair."""
    if not values:
        return None, None
    return sum(values) / len(values), paired_bootstrap(values, seed=seed)


def _trivial(pairs: list[tuple[dict[str, Any], dict[str, Any]]]
             ) -> tuple[ConstantAnswer | None, dict[str, int] | None, dict[str, int] | None]:
    """The constant answer on the paired questions and each side's prediction histogram: all three when both
    sides scored options, none otherwise (a histogram of free answers says nothing about a letter prior)."""
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    if not (is_multiple_choice(xs) and is_multiple_choice(ys)):
        return None, None, None
    return constant_answer(xs), prediction_histogram(xs), prediction_histogram(ys)


def spec_of(stored: dict[str, Any], options: EvalSpec) -> EvalSpec:
    """An eval spec that measures under the stored protocol ``stored`` (its dtype included; backend and device
    from ``options``)."""
    if "measured_as" in stored:  # t2reg.protocols.without_bos_spec
        was = stored["measured_as"]
        measured = (was.get("id") if isinstance(was, dict) else None) or "the protocol they were measured under"
        raise InvalidInputError(f"protocol of {stored.get('task')} scores taken without the <bos> the model needed "
                                f"(void); compare under {measured} to measure both sides afresh")
    if stored.get("legacy") or stored.get("reported"):
        raise InvalidInputError(f"protocol of {stored.get('task')} scores recorded without per-question results "
                                "(legacy or typed in); compare under a measured protocol")
    protocol = Protocol.from_dict(stored)
    return dataclasses.replace(options, task=protocol.task, split=protocol.split, mode=protocol.mode,
                               limit=None if protocol.n == FULL else protocol.n, seed=protocol.sample_seed or 0,
                               permute=protocol.permute, max_new_tokens=protocol.max_new_tokens, dtype=protocol.dtype)


def recorded_rows(registry: Registry, subject: Subject, protocol: Protocol,
                  question_ids: Callable[[], set[str]]) -> list[dict[str, Any]] | None:
    """``subject``'s recorded per-question results under ``protocol``, or those questions (``question_ids``,
    asked only then) cut from a recorded run on the whole split (each question is scored on its own, so a
    sample's rows are the whole split's rows for its questions); None when neither is recorded."""
    found = registry.latest_measured(protocol.task, protocol.id, ref=subject.ref, model=subject.model)
    if found is not None:
        return registry.evaluation_results(found.results_sha256)
    if protocol.n != FULL:
        whole = dataclasses.replace(protocol, n=FULL, sample_seed=None)
        found = registry.latest_measured(whole.task, whole.id, ref=subject.ref, model=subject.model)
        if found is not None:
            wanted = question_ids()
            return [row for row in registry.evaluation_results(found.results_sha256) if row["id"] in wanted]
    return None
