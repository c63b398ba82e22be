"""Scoring a backend on a task, one question at a time or many candidates per pass.

Three modes (:class:`~t2reg.adaptation.tasks.Mode`):

* ``cloze`` (multiple choice): each option's own text, after a space, is scored
  as the continuation of the plain question prompt, as lm-evaluation-harness
  scores ARC. The prediction is the option with the highest summed
  log-probability (``accuracy``); ``accuracy_norm`` divides by the option's
  length in UTF-8 bytes first. The backend computes each question's prefix once
  and shares it across the options.
* ``letter`` (multiple choice): the log-likelihood of each option letter after
  a lettered prompt. ``permute`` K scores every question under K cyclic
  rotations of its options and averages each option's log-likelihood over the
  rotations, so a preference for one letter cancels.
* ``generate``: greedy generation, then the task's checker; the reference
  answer's mean per-token log-probability is the row's ``logprob``.

:func:`evaluate` scores one model, :func:`evaluate_population` many mixtures in
shared batches, and :func:`measure` a drawn set of :class:`Questions` under
the protocol that names them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from t2reg.adaptation.backends import Backend, GenerationRequest, LoglikelihoodRequest, Sampling
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.tasks import LETTERS, Example, Mode, Task
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra

Progress = Callable[[Iterable], Iterable]
Phases = Callable[[str], Progress]  # a progress wrapper for the phase a label names (e.g. a job's final scoring)
Rows = list[dict[str, Any]]
ALIASES = {"choice": Mode.LETTER}  # the name letter scoring had before cloze existed


def resolve_mode(task: Task, mode: str) -> Mode:
    """The mode ``auto`` stands for on ``task`` (its default), or ``mode`` itself if the task supports it."""
    if mode == "auto":
        return task.default_mode
    if mode in ALIASES:
        chosen = ALIASES[mode]
    elif mode in Mode.values():
        chosen = Mode(mode)
    else:
        raise InvalidInputError(f"unknown {{mode}} {mode!r}; choose from auto, {', '.join(Mode.values())}",
                                options=["mode"])
    if chosen not in task.modes:
        raise InvalidInputError(f"{task.name} is not multiple choice; score it by generation ({{mode}} generate)",
                                options=["mode"])
    return chosen


def measure(backend: Backend, questions: Questions, mode: str = "auto", permute: int = 1,
            progress: Progress | None = None) -> EvalResult:
    """Score ``questions`` and name the protocol the score was measured under (the backend's dtype included)."""
    chosen = resolve_mode(questions.task, mode)
    result = evaluate(backend, questions.task, questions.examples, questions.split, chosen, progress,
                      permute=permute)
    return replace(result, protocol=questions.protocol(chosen, permute, backend.dtype))


def evaluate(backend: Backend, task: Task, examples: Sequence[Example], split: str = "test", mode: str = "auto",
             progress: Progress | None = None, reference_logprob: bool = True, permute: int = 1) -> EvalResult:
    """Score ``examples``; every question's row is kept in the result.

    In ``generate`` mode ``reference_logprob`` adds the reference answer's mean per-token log-probability
    to each row (one more forward pass per question), so a search can break ties on accuracy there too.
    """
    chosen = resolve_mode(task, mode)
    start = time.monotonic()
    examples = list(examples)
    rows = _run(chosen, backend, task, examples, progress or (lambda it: it), None, permute)
    if reference_logprob and chosen == Mode.GENERATE:
        _reference_logprobs(backend, task, examples, rows, None)
    return EvalResult.from_outputs(task.name, split, task.metric, chosen, rows, time.monotonic() - start)


def evaluate_population(backend: Backend, task: Task, examples: Sequence[Example], spectra: Spectra,
                        mixtures: Sequence[Mapping[str, Any]], renormalize: str = "nuclear", split: str = "shots",
                        mode: str = "auto", reference_logprob: bool = False, permute: int = 1) -> list[EvalResult]:
    """Score every mixture on ``examples`` in shared batches (one forward pass serves many candidates).

    Row i of a batch runs with its own mixture in factored form (see
    :mod:`t2reg.adaptation.patching.population`); the backend must support it.
    """
    chosen = resolve_mode(task, mode)
    start = time.monotonic()
    examples = list(examples)
    expanded = [ex for _ in mixtures for ex in examples]
    variants = [p for p in range(len(mixtures)) for _ in examples]
    with backend.population(spectra, mixtures, renormalize):
        rows = _run(chosen, backend, task, expanded, lambda it: it, variants, permute)
        if reference_logprob and chosen == Mode.GENERATE:
            _reference_logprobs(backend, task, expanded, rows, variants)
    seconds = (time.monotonic() - start) / max(1, len(mixtures))
    n = len(examples)
    return [EvalResult.from_outputs(task.name, split, task.metric, chosen, rows[p * n : (p + 1) * n], seconds)
            for p in range(len(mixtures))]


def add_reference_logprobs(backend: Backend, task: Task, examples: Sequence[Example], result: EvalResult) -> EvalResult:
    """``result`` (a generation run on ``examples``) with each row's reference log-probability filled in,
    scored with the backend's current weights."""
    _reference_logprobs(backend, task, list(examples), result.outputs, None)
    return EvalResult.from_outputs(result.task, result.split, result.metric, result.mode, result.outputs,
                                   result.seconds, result.protocol)


def choice_prefix(backend: Backend, task: Task, ex: Example) -> str:
    """The letter-mode context: the lettered prompt, rendered, up to the letter."""
    return backend.render(task.prompt(ex)) + "The answer is ("


def option_requests(task: Task, ex: Example, variant: int | None = None) -> list[LoglikelihoodRequest]:
    """Cloze mode: each option's text (after a space) as the continuation of the plain question prompt."""
    context = task.cloze_prompt(ex)
    return [LoglikelihoodRequest(context, f" {text}", variant) for text in ex.choices]


# -- the runners ---------------------------------------------------------------------------------------


def _run(mode: Mode, backend: Backend, task: Task, examples: list[Example], progress: Progress,
         variants: list[int] | None, permute: int) -> Rows:
    if permute < 1 or (permute > 1 and mode != Mode.LETTER):
        raise InvalidInputError("{permute} (at least 1) applies to letter scoring only", options=["permute"])
    if mode == Mode.CLOZE:
        return _cloze(backend, task, examples, progress, variants)
    if mode == Mode.LETTER:
        return _letter(backend, task, examples, progress, variants, permute)
    return _generate(backend, task, examples, progress, variants)


def generation_call(batch_size: int) -> int:
    """Prompts handed to the backend per call when generating: at least one full batch."""
    return max(16, batch_size)


def choice_call(batch_size: int) -> int:
    """Questions handed to the backend per call when scoring options: eight batches, so the backend's
    sort by length has something to sort (ARC-Easy's padding was 2.5x the tokens in sample order, 1.7x
    sorted within calls of 32 questions, 1.3x within 128: bench/padding.py)."""
    return max(32, 8 * batch_size)


def _chunks(backend: Backend, n: int, size: int, progress: Progress) -> Iterable[slice]:
    # Whole calls of ``size`` (a multiple of the batch), so a population fills its batches, and a shard of
    # whole calls on a replica scores every question beside the same neighbours (distributed.sharding).
    return (slice(start, start + size) for start in progress(range(0, n, size)))


def _variant(variants: list[int] | None, i: int) -> int | None:
    return None if variants is None else variants[i]


def _generate(backend: Backend, task: Task, examples: list[Example], progress: Progress,
              variants: list[int] | None) -> Rows:
    rows = []
    sampling = Sampling(task.max_new_tokens, task.stop)
    for part in _chunks(backend, len(examples), generation_call(backend.batch_size), progress):
        batch = examples[part]
        requests = [GenerationRequest(backend.render(task.prompt(ex)), sampling, _variant(variants, part.start + j))
                    for j, ex in enumerate(batch)]
        for ex, text in zip(batch, backend.generate(requests)):
            rows.append({"id": ex.id, "prediction": task.extract(text) if task.extract else None,
                         "answer": ex.answer, "correct": bool(task.check(ex, text)), "logprob": None,
                         "output": text})
    return rows


def _reference_logprobs(backend: Backend, task: Task, examples: list[Example], rows: Rows,
                        variants: list[int] | None) -> None:
    requests = [LoglikelihoodRequest(backend.render(task.prompt(ex)), ex.solution or ex.answer, _variant(variants, i))
                for i, ex in enumerate(examples)]
    # The same chunks as the generation's: a backend sorts what it is handed by length, so a question meets
    # the same neighbours here as in a shard of whole chunks on a replica (distributed.sharding).
    for part in _chunks(backend, len(requests), generation_call(backend.batch_size), lambda it: it):
        for row, request, total in zip(rows[part], requests[part], backend.loglikelihood(requests[part])):
            tokens = backend.split_continuation(request.context, request.continuation)[1]
            row["logprob"] = total / max(1, len(tokens))


def option_logprobs(backend: Backend, task: Task, examples: Sequence[Example], progress: Progress | None = None,
                    variants: list[int] | None = None) -> list[list[float]]:
    """Cloze: each question's options' summed log-probabilities, as evaluation scores them. Reads no answer,
    so label-free methods (distillation's teacher) score exactly what evaluation scores."""
    out: list[list[float]] = []
    examples = list(examples)
    for part in _chunks(backend, len(examples), choice_call(backend.batch_size), progress or (lambda it: it)):
        batch = examples[part]
        requests = [r for j, ex in enumerate(batch) for r in option_requests(task, ex, _variant(variants, part.start + j))]
        scores = iter(backend.loglikelihood(requests))
        out += [[next(scores) for _ in ex.choices] for ex in batch]
    return out


def _cloze(backend: Backend, task: Task, examples: list[Example], progress: Progress,
           variants: list[int] | None) -> Rows:
    rows = []
    for ex, logprobs in zip(examples, option_logprobs(backend, task, examples, progress, variants)):
        rows.append(cloze_row(ex, logprobs))
    return rows


def cloze_row(ex: Example, logprobs: Sequence[float]) -> dict[str, Any]:
    """A question's cloze result from its options' log-probabilities (``accuracy`` and, per byte,
    ``accuracy_norm``)."""
    logprobs = list(logprobs)
    norm = [lp / max(1, len(text.encode("utf-8"))) for lp, text in zip(logprobs, ex.choices)]
    truth = LETTERS.index(ex.answer)
    best, best_norm = _argmax(logprobs), _argmax(norm)
    return {"id": ex.id, "prediction": LETTERS[best], "answer": ex.answer, "correct": best == truth,
            "correct_norm": best_norm == truth, "logprob": logprobs[truth], "option_logprobs": logprobs}


def _letter(backend: Backend, task: Task, examples: list[Example], progress: Progress,
            variants: list[int] | None, permute: int) -> Rows:
    rows = []
    for part in _chunks(backend, len(examples), choice_call(backend.batch_size), progress):
        batch = examples[part]
        requests, owners = [], []  # owners[i]: (question in batch, the original option a request scores)
        for j, ex in enumerate(batch):
            for rotation in range(min(permute, len(ex.choices))):
                shown = _rotated(ex, rotation)
                context = choice_prefix(backend, task, shown)
                for position in range(len(ex.choices)):
                    requests.append(LoglikelihoodRequest(context, LETTERS[position],
                                                         _variant(variants, part.start + j)))
                    owners.append((j, (position + rotation) % len(ex.choices)))
        totals = [[0.0] * len(ex.choices) for ex in batch]
        for (j, option), score in zip(owners, backend.loglikelihood(requests)):
            totals[j][option] += score
        for j, ex in enumerate(batch):
            rotations = min(permute, len(ex.choices))
            logprobs = [t / rotations for t in totals[j]]
            truth, best = LETTERS.index(ex.answer), _argmax(logprobs)
            rows.append({"id": ex.id, "prediction": LETTERS[best], "answer": ex.answer, "correct": best == truth,
                         "logprob": logprobs[truth], "option_logprobs": logprobs})
    return rows


def _rotated(ex: Example, rotation: int) -> Example:
    """The example with its options shown rotated: position i shows original option (i + rotation) mod n."""
    if rotation == 0:
        return ex
    n = len(ex.choices)
    choices = tuple(ex.choices[(i + rotation) % n] for i in range(n))
    answer = LETTERS[(LETTERS.index(ex.answer) - rotation) % n]
    return replace(ex, choices=choices, answer=answer)


def _argmax(values: Sequence[float]) -> int:
    # Ties go to the earliest option, so a constant scorer is a constant (and visible) answer.
    return max(range(len(values)), key=lambda i: (values[i], -i))
