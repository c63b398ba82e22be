"""Paired comparison of two conditions on the same questions (``t2reg compare``).

X and Y are expert versions (``NAME:VERSION``) or base models alone
(``base:MODEL``). Both are scored under one protocol (running whichever has
no recorded score with per-question results yet), their per-question results
are paired by question id, and the report gives n, both accuracies, the
difference Y - X with a paired bootstrap 95% interval, McNemar's exact p-value,
and the mean difference in the log-probability of the right answer with its
interval; for multiple choice, beside them, the accuracy of always giving the
most common right answer on those questions and how each side's predictions
spread over the options (a constant answer or a letter prior explains a
difference before the model's knowledge does). Pairing removes the variation
between questions; two separate intervals would hide differences far larger
than this resolves.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from t2reg.adaptation.evaluation.paired import Comparison, Subject, pair, recorded_rows, spec_of
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.runs import questions_for, record, run_evaluation
from t2reg.adaptation.evaluation.scoring import Progress, resolve_mode
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.protocols import Protocol
from t2reg.registry import Registry


def compare(registry: Registry, x: str, y: str, spec: EvalSpec, protocol: str | None = None,
            progress: Progress | None = None) -> Comparison:
    """Compare X and Y under ``protocol`` (an id), or under the protocol ``spec``'s options define; each side
    is evaluated first if it has no score with per-question results under it."""
    spec = spec_of(registry.protocol(protocol).spec, spec) if protocol else spec
    spec.validate_questions()
    questions = questions_for(spec)
    measured = questions.protocol(resolve_mode(questions.task, spec.mode), spec.permute, spec.dtype)
    rows = [results_for(registry, Subject.parse(side), spec, measured, progress) for side in (x, y)]
    return pair(rows[0], rows[1], x, y, measured)


def results_for(registry: Registry, subject: Subject, spec: EvalSpec, protocol: Protocol,
                progress: Progress | None = None) -> list[dict[str, Any]]:
    """``subject``'s per-question results under ``protocol``: the recorded ones (:func:`recorded_rows`), or
    a new evaluation."""
    rows = recorded_rows(registry, subject, protocol, lambda: {ex.id for ex in questions_for(spec).examples})
    if rows is not None:
        return rows
    run = run_evaluation(registry, dataclasses.replace(spec, ref=subject.ref, base=subject.model), progress)
    return run.result.outputs


def base_result(registry: Registry, model: str, questions: Questions, dtype: str,
                measure_now: Callable[[], EvalResult], source: str) -> EvalResult:
    """The base ``model`` alone on ``questions`` (its task's default mode, in ``dtype``): read back when it is
    recorded (every condition that pairs against the base shares one run), else ``measure_now()``,
    recorded under ``source``."""
    protocol = questions.protocol(questions.task.default_mode, dtype=dtype)
    rows = recorded_rows(registry, Subject(model=model), protocol, lambda: {ex.id for ex in questions.examples})
    if rows is not None:
        task = questions.task
        return EvalResult.from_outputs(task.name, questions.split, task.metric, str(protocol.mode), rows, 0.0,
                                       protocol)
    result = measure_now()
    record(registry, result, model=model, source=source)
    return result
