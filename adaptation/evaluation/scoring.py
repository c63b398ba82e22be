"""Scoring a backend on a task: generation (then the task's checker) or option log-likelihood.

One runner per mode turns examples into per-example outputs; :func:`evaluate`
runs one model, :func:`evaluate_population` many mixtures in shared batches.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from t2reg.adaptation.backends import Backend, GenerationRequest, LoglikelihoodRequest, Sampling
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.spec import MODES
from t2reg.adaptation.tasks import LETTERS, Example, Task
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra

Progress = Callable[[Iterable], Iterable]


def resolve_mode(task: Task, mode: str) -> str:
    if mode not in MODES:
        raise InvalidInputError(f"unknown {{mode}} {mode!r}; choose from {', '.join(MODES)}", options=["mode"])
    if mode == "auto":
        return "choice" if task.multiple_choice else "generate"
    if mode == "choice" and not task.multiple_choice:
        raise InvalidInputError(f"{task.name} is not multiple choice; score it by generation ({{mode}} generate)",
                                options=["mode"])
    return mode


def evaluate(backend: Backend, task: Task, examples: Sequence[Example], split: str = "test", mode: str = "auto",
             progress: Progress | None = None, reference_logprob: bool = False) -> EvalResult:
    """Score ``examples``; every per-example output is kept in the result.

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
    :mod:`t2reg.adaptation.patching.population`); the backend must support it.
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
    return EvalResult.from_outputs(task.name, split, task.metric, mode, outputs, seconds)


def _chunks(backend: Backend, n: int, least: int, progress: Progress) -> Iterable[slice]:
    # Hand the backend at least one full batch at a time, so a population fills its batches.
    size = max(least, backend.batch_size)
    return (slice(start, start + size) for start in progress(range(0, n, size)))


def _variant(variants: list[int] | None, i: int) -> int | None:
    return None if variants is None else variants[i]


def _generate(backend: Backend, task: Task, examples: list[Example], progress: Progress,
              variants: list[int] | None) -> list[dict]:
    outputs = []
    sampling = Sampling(task.max_new_tokens, task.stop)
    for part in _chunks(backend, len(examples), 16, progress):
        batch = examples[part]
        requests = [GenerationRequest(backend.render(task.prompt(ex)), sampling, _variant(variants, part.start + j))
                    for j, ex in enumerate(batch)]
        texts = backend.generate(requests)
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
    requests = [LoglikelihoodRequest(backend.render(task.prompt(ex)), ex.solution or ex.answer, _variant(variants, i))
                for i, ex in enumerate(examples)]
    for out, request, total in zip(outputs, requests, backend.loglikelihood(requests)):
        tokens = backend.split_continuation(request.context, request.continuation)[1]
        out["correct_logprob"] = total / max(1, len(tokens))


def choice_prefix(backend: Backend, task: Task, ex: Example) -> str:
    return backend.render(task.prompt(ex)) + "The answer is ("


def _choice(backend: Backend, task: Task, examples: list[Example], progress: Progress,
            variants: list[int] | None) -> list[dict]:
    outputs = []
    for part in _chunks(backend, len(examples), 32, progress):
        batch = examples[part]
        requests = [LoglikelihoodRequest(choice_prefix(backend, task, ex), LETTERS[i], _variant(variants, part.start + j))
                    for j, ex in enumerate(batch) for i in range(len(ex.choices))]
        scores = iter(backend.loglikelihood(requests))
        for ex in batch:
            row = [next(scores) for _ in ex.choices]
            best = max(range(len(row)), key=lambda i: (row[i], -i))
            truth = LETTERS.index(ex.answer)
            outputs.append({"id": ex.id, "output": LETTERS[best], "answer": ex.answer, "correct": best == truth,
                            "logprobs": row, "correct_logprob": row[truth]})
    return outputs


_RUNNERS = {"generate": _generate, "choice": _choice}
