"""Dispatch: two-pass inference that classifies each prompt, then answers it with its category's expert
(the paper's strategies A and B; ``fixed:REF`` is the single-expert control). One word for it everywhere:
a :class:`DispatchPlan` (which expert answers which category) is made from a :class:`DispatchSpec`, and
:func:`dispatch` runs both passes. (Stored data keeps its older spelling: a protocol's ``routing`` field and
the ``two-pass:`` source of a recorded evaluation.)

First pass: ``prompt`` asks the model itself which category a prompt belongs
to (answer in ``\\boxed{}``); ``classifier`` applies the trained
classification expert (``t2reg train --task dispatch``, tagged
``role=dispatcher``) and reads the category off the option log-likelihoods.
Second pass: prompts are grouped by the chosen expert and each group runs in
batches with that expert applied; ``other`` runs on the base weights.

The categories are those of the pool's experts' tasks, not a fixed list: each
category's expert is the pool's best for it by the registry's ``best``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from t2reg.adaptation.backends import Backend, GenerationRequest, LoglikelihoodRequest, Sampling, open_for
from t2reg.adaptation.evaluation.questions import SAMPLE_SEED
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.runs import questions_for, record
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.evaluation.scoring import evaluate, option_requests
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import CATEGORIES, Example, Task, get_task, sample
from t2reg.adaptation.tasks import data_dir as resolve_data_dir
from t2reg.adaptation.tasks.answers import last_boxed
from t2reg.adaptation.tasks.dispatch import dispatch_prompt
from t2reg.errors import InvalidInputError, NotFoundError, Remedy
from t2reg.registry import ExpertVersion, Registry
from t2reg.enums import Strategy

OTHER = "other"
STRATEGIES = (Strategy.PROMPT.value, Strategy.CLASSIFIER.value, f"{Strategy.FIXED}:REF")
_BOXED = "\nPut the category name in \\boxed{}."


@dataclass(frozen=True)
class DispatchSpec:
    """What a dispatch command names: the base ``model``, how its first pass picks (``strategy``: prompt,
    classifier or fixed:REF) among which experts (``pool`` filters), and the backend that runs both passes."""

    model: str
    strategy: str
    pool: tuple[str, ...] = ()
    backend: str = "hf"

    def plan(self, registry: Registry) -> DispatchPlan:
        return plan_dispatch(registry, self.model, self.strategy, self.pool)


@dataclass
class DispatchPlan:
    """Which expert answers which category, and how prompts are classified."""

    strategy: Strategy
    experts: dict[str, ExpertVersion]  # category -> expert; categories without one use the base weights
    dispatcher: ExpertVersion | None = None

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self.experts)) + (OTHER,)


@dataclass
class DispatchResult:
    categories: list[str]  # per prompt
    experts: list[str | None]  # per prompt: the ref applied in the second pass
    first_pass_seconds: float
    second_pass_seconds: float
    outputs: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"categories": self.categories, "experts": self.experts,
                "first_pass_seconds": self.first_pass_seconds, "second_pass_seconds": self.second_pass_seconds}


def plan_dispatch(registry: Registry, model: str, strategy: str, pool: Sequence[str] = ()) -> DispatchPlan:
    """The experts per category (the pool's best by ``best``), and the dispatcher for ``classifier``."""
    if strategy.startswith(f"{Strategy.FIXED}:"):
        version = registry.get(strategy.removeprefix(f"{Strategy.FIXED}:"))
        target = registry.get_model(model).name
        if version.model != target:
            raise InvalidInputError(f"{version.ref} is an expert for {version.model}, not {target}",
                                    remedy=Remedy("transfer it first", ("transfer",), (version.ref,),
                                                  (("to", model),)))
        return DispatchPlan(Strategy.FIXED, {"fixed": version})
    if strategy not in (Strategy.PROMPT, Strategy.CLASSIFIER):
        raise InvalidInputError(f"unknown {{strategy}} {strategy!r}; choose from {', '.join(STRATEGIES)}",
                                options=["strategy"])
    if not pool:
        raise InvalidInputError("the prompt and classifier strategies need a pool of experts to choose from ({pool})",
                                options=["pool"])
    target = registry.get_model(model).name
    candidates = [v for v in registry.pool(pool) if v.model == target and v.task and v.task != "dispatch"]
    experts = _best_per_category(registry, target, candidates)
    if not experts:
        raise InvalidInputError(f"no expert of the pool is on {target} with a registered task; nothing to dispatch to")
    dispatcher = None
    if strategy == Strategy.CLASSIFIER:
        found = registry.list(model=target, where="tag.role=dispatcher")
        if not found:
            raise NotFoundError(f"no classification expert for {target}",
                                remedy=Remedy("train one", ("train",), (), (("model", model), ("task", "dispatch"))))
        dispatcher = found[0]
    return DispatchPlan(Strategy(strategy), experts, dispatcher)


def _best_per_category(registry: Registry, model: str, candidates: list[ExpertVersion]) -> dict[str, ExpertVersion]:
    by_ref = {v.ref: v for v in candidates}
    scored: dict[str, tuple[float, ExpertVersion]] = {}
    unscored: dict[str, ExpertVersion] = {}
    for task_name in sorted({v.task for v in candidates}):
        try:
            task = get_task(task_name)
        except NotFoundError:
            continue  # an expert for a task t2reg does not know has no category
        ranked = [r for r in registry.best(task_name, task.metric, model=model, limit=1000) if r.ref in by_ref]
        if ranked and (task.category not in scored or ranked[0].value > scored[task.category][0]):
            scored[task.category] = (ranked[0].value, by_ref[ranked[0].ref])
        for v in candidates:
            if v.task == task_name:
                unscored.setdefault(task.category, v)
    return {c: scored[c][1] if c in scored else unscored[c] for c in unscored}


def classify(backend: Backend, registry: Registry, plan: DispatchPlan, questions: Sequence[str]) -> list[str]:
    """First pass: a category per question (``other`` when the answer is not one of them)."""
    if plan.strategy == Strategy.FIXED:
        return ["fixed"] * len(questions)
    if plan.strategy == Strategy.PROMPT:
        names = plan.categories
        answers = backend.generate([dispatch_request(backend, q, names) for q in questions])
        return [category_of(a, names) for a in answers]
    spectra = load_spectra(plan.dispatcher.model, registry)
    with backend.patched(spectra, registry.read_expert(plan.dispatcher.ref)):
        scores = backend.loglikelihood(classifier_requests(questions))
    return categories_from_scores(plan, scores)


# The first pass in pieces, for callers that batch it themselves (the server).


def dispatch_question(question: str, names: Sequence[str]) -> str:
    """The ``prompt`` strategy's first-pass question (a user turn, to render): name the category in ``\\boxed{}``."""
    return dispatch_prompt(question, tuple(names)) + _BOXED


def dispatch_request(backend: Backend, question: str, names: Sequence[str]) -> GenerationRequest:
    """The ``prompt`` strategy's first pass for one question, rendered for ``backend``."""
    return GenerationRequest(backend.render(dispatch_question(question, names)), Sampling(max_new_tokens=32))


def category_of(answer: str, names: Sequence[str]) -> str:
    """The category a first-pass answer names (``other`` when it names none of ``names``)."""
    return _category(last_boxed(answer) or answer, names)


def classifier_requests(questions: Sequence[str], variant: int | None = None) -> list[LoglikelihoodRequest]:
    """The ``classifier`` strategy's first pass: each category's name as the continuation of the dispatch
    prompt after each question (scored with the dispatcher applied), the way the dispatch task is evaluated
    and trained."""
    dispatch = get_task("dispatch")
    examples = [Example(f"q{i}", q, "A", CATEGORIES) for i, q in enumerate(questions)]
    return [r for ex in examples for r in option_requests(dispatch, ex, variant)]


def categories_from_scores(plan: DispatchPlan, scores: Sequence[float]) -> list[str]:
    """Each question's most likely category from :func:`classifier_requests`' scores, ``other`` when it has
    no expert."""
    picked = []
    for i in range(len(scores) // len(CATEGORIES)):
        row = scores[i * len(CATEGORIES) : (i + 1) * len(CATEGORIES)]
        category = CATEGORIES[max(range(len(row)), key=lambda j: (row[j], -j))]
        picked.append(category if category in plan.experts else OTHER)
    return picked


def _category(text: str, names: Sequence[str]) -> str:
    cleaned = text.strip().strip("'\"`.").lower()
    for name in names:
        if cleaned == name or cleaned.rstrip("s") == name:  # 'others' is 'other'
            return name
    return OTHER


def dispatch(backend: Backend, registry: Registry, plan: DispatchPlan, questions: Sequence[str],
             answer: Callable[[Backend, list[int]], list[Any]]) -> DispatchResult:
    """Classify ``questions``, then call ``answer(backend, indices)`` once per expert, with it applied."""
    start = time.perf_counter()
    categories = classify(backend, registry, plan, questions)
    first = time.perf_counter() - start
    groups: dict[str, list[int]] = defaultdict(list)
    for i, category in enumerate(categories):
        groups[category if category in plan.experts else OTHER].append(i)
    outputs: list[Any] = [None] * len(questions)
    experts: list[str | None] = [None] * len(questions)
    start = time.perf_counter()
    spectra = None
    for category, indices in sorted(groups.items()):
        version = plan.experts.get(category)
        if version is None:
            results = answer(backend, indices)
        else:
            spectra = spectra or load_spectra(version.model, registry)
            with backend.patched(spectra, registry.read_expert(version.ref)):
                results = answer(backend, indices)
        for i, out in zip(indices, results):
            outputs[i], experts[i] = out, version.ref if version else None
    return DispatchResult(categories, experts, first, time.perf_counter() - start, outputs)


def generate_answers(questions: Sequence[str], max_new_tokens: int) -> Callable[[Backend, list[int]], list[str]]:
    """The ``answer`` step of ``t2reg run``: a completion per question."""
    sampling = Sampling(max_new_tokens)

    def answer(backend: Backend, indices: list[int]) -> list[str]:
        return backend.generate([GenerationRequest(backend.render(questions[i]), sampling) for i in indices])

    return answer


def evaluate_dispatched(backend: Backend, registry: Registry, plan: DispatchPlan, task: Task,
                      examples: Sequence[Example]) -> tuple[EvalResult, DispatchResult]:
    """Score ``task`` with each example answered by its dispatched expert."""
    examples = list(examples)

    def answer(backend: Backend, indices: list[int]) -> list[dict]:
        return evaluate(backend, task, [examples[i] for i in indices]).outputs

    dispatched = dispatch(backend, registry, plan, [task.prompt(ex) for ex in examples], answer)
    result = EvalResult.from_outputs(task.name, "test", task.metric, task.default_mode, dispatched.outputs,
                                     dispatched.first_pass_seconds + dispatched.second_pass_seconds)
    return result, dispatched


@dataclass
class DispatchReport:
    """How the first pass sorts prompts of known tasks: a confusion matrix over categories."""

    strategy: str
    categories: list[str]
    confusion: dict[str, dict[str, int]]  # true category -> predicted category -> count
    per_task: dict[str, dict[str, int]]  # task -> predicted category -> count
    seconds: float

    @property
    def accuracy(self) -> float:
        total = sum(sum(row.values()) for row in self.confusion.values())
        right = sum(row.get(c, 0) for c, row in self.confusion.items())
        return right / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "categories": self.categories, "accuracy": self.accuracy,
                "confusion": self.confusion, "per_task": self.per_task, "seconds": self.seconds}


def dispatch_report(backend: Backend, registry: Registry, plan: DispatchPlan, tasks: Sequence[str],
                    per_task: int = 20, data_dir=None) -> DispatchReport:
    """Classify ``per_task`` test prompts of each task and count where they land."""
    root = resolve_data_dir(data_dir)
    questions, truth, sources = [], [], []
    for name in tasks:
        task = get_task(name)
        for ex in sample(task.examples("test", root), per_task, SAMPLE_SEED):
            questions.append(task.prompt(ex))
            truth.append(task.category)
            sources.append(name)
    start = time.perf_counter()
    predicted = classify(backend, registry, plan, questions)
    seconds = time.perf_counter() - start
    labels = sorted(set(plan.categories) | set(truth))
    confusion = {t: {p: 0 for p in labels} for t in labels}
    by_task: dict[str, dict[str, int]] = {n: {p: 0 for p in labels} for n in tasks}
    for t, p, n in zip(truth, predicted, sources):
        confusion[t][p] += 1
        by_task[n][p] += 1
    return DispatchReport(plan.strategy, labels, confusion, by_task, seconds)


# -- runs: open the model, dispatch, close ------------------------------------------------------------


def answer_questions(registry: Registry, spec: DispatchSpec, questions: Sequence[str],
                     max_new_tokens: int = 256) -> DispatchResult:
    """``t2reg run``: each question answered by the expert its first pass picks."""
    plan = spec.plan(registry)
    with open_for(registry, spec.model, spec.backend) as backend:
        return dispatch(backend, registry, plan, list(questions), generate_answers(questions, max_new_tokens))


def report_dispatch(registry: Registry, spec: DispatchSpec, tasks: Sequence[str], per_task: int = 20,
                    data_dir: str | None = None) -> DispatchReport:
    """``t2reg dispatch-report``: where the first pass sends test prompts of known tasks (the pool defaults
    to every expert of the model)."""
    if not spec.pool:
        spec = dataclasses.replace(spec, pool=(f"model={spec.model}",))
    plan = spec.plan(registry)
    with open_for(registry, spec.model, spec.backend) as backend:
        return dispatch_report(backend, registry, plan, tasks, per_task, data_dir)


def run_dispatched_evaluation(registry: Registry, spec: EvalSpec, strategy: str,
                            pool: Sequence[str]) -> tuple[EvalResult, DispatchResult]:
    """Evaluate ``spec.base`` on its questions, each answered by the expert a first pass picks; recorded
    as a base-model evaluation under a protocol that names the plan (so it never pairs as the base
    model alone)."""
    spec.validate()
    questions = questions_for(spec)
    plan = DispatchSpec(spec.base, strategy, tuple(pool), spec.backend).plan(registry)
    with open_for(registry, spec.base, spec.backend, device=spec.device, dtype=spec.dtype,
                  batch_size=spec.batch_size) as backend:
        result, dispatched = evaluate_dispatched(backend, registry, plan, questions.task, questions.examples)
        protocol = dataclasses.replace(questions.protocol(questions.task.default_mode, dtype=backend.dtype),
                                       routing=plan.strategy.value)
    result = dataclasses.replace(result, split=spec.split, protocol=protocol)
    record(registry, result, model=spec.base, source=f"two-pass:{plan.strategy}")
    return result, dispatched
