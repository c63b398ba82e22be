"""What each page of ``t2reg ui`` shows, as typed data: one function per page, reading the registry only.

A page's HTML template renders the object its view returns and the page's ``/api`` endpoint serialises that same
object (:func:`t2reg.registry.entities.plain`), so the two cannot disagree. Views never write: the UI is
read-only whatever the registry allows.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from t2reg.enums import JobStatus, ListSort, Relation, Source, Word
from t2reg.errors import InvalidInputError, NotFoundError, shown
from t2reg.protocols import Protocol, describe_spec
from t2reg.question_results import ConstantAnswer, constant_answer, prediction_histogram
from t2reg.records import PairedRecord
from t2reg.registry import Registry
from t2reg.registry.bundles.card import interval95
from t2reg.registry.derived import JOB_TAG, published_by
from t2reg.registry.entities import EvaluationInfo, ExpertVersion, JobEvent, JobInfo, ModelInfo, RankedVersion
from t2reg.registry.protocols import is_measured

PAGE_SIZE = 50  # experts per page of the index
METRIC = "accuracy"  # the index's score column: what `t2reg best` ranks by default
PROFILES = 3  # matrices whose z is drawn along the rank axis on a version's page
ANCESTOR_DEPTH = 4  # lineage generations walked up from a version ...
DESCENDANT_DEPTH = 2  # ... and down
LINEAGE_NODES = 40  # the most versions one lineage graph draws


SortKey = ListSort  # the experts index's sortable columns: the registry's listing sorts by them


# -- the experts index ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """A version's newest score under one protocol, with its n and 95 % interval (as ``best`` ranks it)."""

    value: float
    n: int | None
    interval95: tuple[float, float] | None
    protocol: str


@dataclass(frozen=True)
class ExpertRow:
    ref: str
    name: str
    version: int
    model: str
    task: str | None
    source: Source
    created_at: datetime
    score: Score | None  # under the task's default protocol; None where it has none


@dataclass(frozen=True)
class ExpertsPage:
    where: str
    sort: SortKey
    descending: bool
    page: int  # from 1
    pages: int
    total: int
    rows: tuple[ExpertRow, ...]


def experts_page(registry: Registry, where: str, sort: SortKey, descending: bool, page: int) -> ExpertsPage:
    """The latest live version of every expert matching ``where`` (``t2reg list --where``'s language; empty:
    all), one page of them, with their scores. The registry sorts, counts and cuts the page
    (:meth:`Registry.list_page`), so the first page of 100,000 versions costs what the first of ten does."""
    if page < 1:
        raise InvalidInputError(f"page {page} does not exist: pages are numbered from 1")
    listed = registry.list_page(where=where.strip() or None, sort=sort, descending=descending,
                                offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, metric=METRIC)
    pages = max(1, -(-listed.total // PAGE_SIZE))
    if page > pages:
        raise InvalidInputError(f"page {page} does not exist: there are {pages}")
    rows = tuple(ExpertRow(v.ref, v.name, v.version, v.model, v.task, v.source, v.created_at,
                           _score(listed.scores.get(v.ref))) for v in listed.versions)
    return ExpertsPage(where, sort, descending, page, pages, listed.total, rows)


def _score(evaluation: EvaluationInfo | None) -> Score | None:
    if evaluation is None:
        return None
    return Score(evaluation.value, evaluation.n, interval95(evaluation), evaluation.protocol)


# -- a version ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreLine:
    task: str
    metric: str
    value: float
    split: str | None
    n: int | None
    interval95: tuple[float, float] | None
    source: str
    created_at: datetime
    baseline: ConstantAnswer | None = None  # from the per-question results, for multiple-choice runs that kept them
    spread: dict[str, int] | None = None  # how often each option was predicted, likewise


@dataclass(frozen=True)
class ProtocolScores:
    protocol: str
    described: str
    scores: tuple[ScoreLine, ...]


@dataclass(frozen=True)
class MatrixShift:
    """How far one matrix's z moved from the identity (z = 1)."""

    name: str
    rank: int
    mean_abs: float  # mean |z - 1|
    max_abs: float  # max |z - 1|


@dataclass(frozen=True)
class RankProfile:
    """z along the descending singular-value order of one matrix."""

    name: str
    z: tuple[float, ...]


@dataclass(frozen=True)
class VersionPage:
    version: ExpertVersion
    job: int | None  # the job that published it
    protocols: tuple[ProtocolScores, ...]
    shifts: tuple[MatrixShift, ...]
    profiles: tuple[RankProfile, ...]
    card: str  # the model card's text (rendered escaped by the page)
    other_versions: tuple[int, ...] = ()
    comparable: tuple[str, ...] = ()  # protocols it has per-question results under: what it can be compared in


def version_page(registry: Registry, name: str, version: int) -> VersionPage:
    found = registry.get(f"{name}:{version}")
    expert = registry.read_expert(found.ref)
    vectors = {key: np.asarray(z, dtype=np.float64) for key, z in expert.vectors.items()}
    shifts = tuple(MatrixShift(key, len(z), float(np.mean(np.abs(z - 1))), float(np.max(np.abs(z - 1))))
                   for key, z in sorted(vectors.items(), key=lambda item: _matrix_order(item[0])))
    profiles = tuple(RankProfile(key, tuple(float(x) for x in vectors[key])) for key in _profiled(vectors))
    others = tuple(v.version for v in registry.list(where=f"name={found.name}", all_versions=True))
    comparable = tuple(dict.fromkeys(e.protocol for e in found.evaluations if e.results_sha256))
    return VersionPage(found, _job_of(found), _protocol_scores(registry, found.evaluations), shifts, profiles,
                       _card(found), others, comparable)


def _job_of(version: ExpertVersion) -> int | None:
    return published_by(version.tags.get(JOB_TAG))


def _card(version: ExpertVersion) -> str:
    """The card: the version's own description, or the sentence a bundle's model card writes in its place."""
    return version.description or (f"A Transformer-Squared SVF expert for {version.model}"
                                   + (f" on {version.task}." if version.task else "."))


def _protocol_scores(registry: Registry, evaluations: Iterable[EvaluationInfo]) -> tuple[ProtocolScores, ...]:
    grouped: dict[str, list[EvaluationInfo]] = {}
    for evaluation in evaluations:
        grouped.setdefault(evaluation.protocol, []).append(evaluation)
    known = registry.protocols_by_id(grouped)
    out = []
    for protocol_id, rows in grouped.items():
        lines = []
        for e in rows:
            baseline, spread = _summary(registry, e.results_sha256) if e.results_sha256 else (None, None)
            lines.append(ScoreLine(e.task, e.metric, e.value, e.split, e.n, interval95(e), e.source, e.created_at,
                                   baseline, spread))
        described = describe_spec(known[protocol_id].spec) if protocol_id in known else "(protocol not recorded)"
        out.append(ProtocolScores(protocol_id, described, tuple(lines)))
    return tuple(out)


Summary = tuple[ConstantAnswer | None, dict[str, int] | None]
_SUMMARIES: OrderedDict[str, Summary] = OrderedDict()  # results hash -> summary; a run's metrics share one blob
_SUMMARIES_LOCK = threading.Lock()  # pages render on the server's worker threads
SUMMARIES_KEPT = 256


def _summary(registry: Registry, sha256: str) -> Summary:
    """A results blob's baseline and spread, read once: blobs are content-addressed, so what a hash held once it
    holds for good, in any registry (a page reload reads no blob twice)."""
    with _SUMMARIES_LOCK:
        if sha256 in _SUMMARIES:
            _SUMMARIES.move_to_end(sha256)
            return _SUMMARIES[sha256]
    summary = _from_results(registry.evaluation_results(sha256))  # outside the lock: a blob may take a while
    with _SUMMARIES_LOCK:
        _SUMMARIES[sha256] = summary
        while len(_SUMMARIES) > SUMMARIES_KEPT:
            _SUMMARIES.popitem(last=False)
    return summary


def _from_results(rows: list[dict[str, Any]]) -> Summary:
    """The constant baseline and the prediction histogram, for multiple-choice runs only (as an evaluation's
    report gives them): for an open answer both say nothing."""
    return constant_answer(rows), prediction_histogram(rows)


_NUMBER = re.compile(r"\.(\d+)\.")


def _matrix_order(name: str) -> tuple[int, str]:
    """Layer first, then the name: ``layers.10`` after ``layers.9``."""
    found = _NUMBER.search(name)
    return (int(found.group(1)) if found else -1, name)


def _profiled(vectors: Mapping[str, np.ndarray]) -> list[str]:
    """A few matrices to draw: the middle layer's matrix of each role (the transfer report's choice)."""
    roles: dict[str, list[str]] = {}
    for key in vectors:
        roles.setdefault(key.rsplit(".", 2)[-2], []).append(key)
    chosen = []
    for names in roles.values():
        names.sort(key=_matrix_order)
        chosen.append(names[len(names) // 2])
    return sorted(chosen, key=_matrix_order)[:PROFILES]


# -- lineage -----------------------------------------------------------------------------------------------------


class NodeKind(Word):
    VERSION = "version"
    JOB = "job"


@dataclass(frozen=True)
class LineageNode:
    key: str  # NAME:VERSION, or the job's id
    kind: NodeKind
    label: str
    detail: str
    depth: int  # generations from the page's version: ancestors below 0, descendants above


@dataclass(frozen=True)
class LineageEdge:
    parent: str  # a node's key
    child: str
    relation: Relation | None  # None: the job that published the child
    weight: float | None = None  # a mixture component's alpha
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineagePage:
    root: str
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]


def lineage_page(registry: Registry, name: str, version: int) -> LineagePage:
    """The version, what it came from (transfer sources, mixture components, the job that made it) and what was
    made from it, a few generations each way (a few queries however many versions it draws)."""
    graph = registry.lineage_graph(f"{name}:{version}", up=ANCESTOR_DEPTH, down=DESCENDANT_DEPTH,
                                   limit=LINEAGE_NODES)
    nodes = [LineageNode(v.ref, NodeKind.VERSION, v.ref, f"{v.source.value} · {v.model}", v.depth)
             for v in graph.versions]
    edges = [LineageEdge(link.parent, link.child, link.relation, link.weight, dict(link.params))
             for link in graph.links]
    # The job that published the version, and each of its ancestors': where it came from, not what it made.
    jobs: set[str] = set()
    for v in graph.versions:
        if v.job is None or v.depth > 0:
            continue
        if str(v.job) not in jobs:
            jobs.add(str(v.job))
            nodes.append(LineageNode(str(v.job), NodeKind.JOB, f"job {v.job}", "published it", v.depth - 1))
        edges.append(LineageEdge(str(v.job), v.ref, None))
    return LineagePage(graph.root, tuple(nodes), tuple(edges))


# -- jobs ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    status: JobStatus
    worker: str | None
    task: str | None
    model: str | None
    steps: int  # events recorded so far
    iterations: int | None  # steps it will take, where its spec says
    created_at: datetime


@dataclass(frozen=True)
class JobsPage:
    jobs: tuple[JobRow, ...]


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]  # (iteration, value)


@dataclass(frozen=True)
class Panel:
    title: str
    y_label: str
    series: tuple[Series, ...]


@dataclass(frozen=True)
class JobPage:
    job: JobRow
    spec: dict[str, Any]
    error: str | None
    published: str | None
    last_seq: int  # the newest event shown: the page asks for those after it
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class JobEvents:
    """What a job page polls: its status, and the events after the last one it has."""

    job: int
    status: JobStatus
    steps: int
    last_seq: int
    events: tuple[JobEvent, ...]


JOB_LIMIT = 200  # jobs on the queue page, newest first


def jobs_page(registry: Registry) -> JobsPage:
    return JobsPage(tuple(_job_row(job) for job in registry.jobs.list(limit=JOB_LIMIT)))


def _job_row(job: JobInfo) -> JobRow:
    iterations = job.spec.get("iterations")
    return JobRow(job.id, job.kind, job.status, job.worker, job.spec.get("task"), job.spec.get("model"), job.events,
                  iterations if isinstance(iterations, int) else None, job.created_at)


def job_page(registry: Registry, job_id: int) -> JobPage:
    job = registry.jobs.get(job_id)
    events = registry.jobs.events(job_id)
    published = (job.result or {}).get("published")
    return JobPage(_job_row(job), {k: v for k, v in job.spec.items() if v not in (None, False)}, job.error,
                   published if isinstance(published, str) else None, events[-1].seq if events else 0,
                   job_panels(job, events))


def job_events(registry: Registry, job_id: int, after: int) -> JobEvents:
    if after < 0:
        raise InvalidInputError(f"after must not be negative, not {shown(after)}")
    job = registry.jobs.get(job_id)
    events = tuple(registry.jobs.events(job_id, after=after))
    return JobEvents(job.id, job.status, job.events, events[-1].seq if events else after, events)


# What a job's events hold (see t2reg.adaptation.reporting.plots, which draws the same for `t2reg jobs plot`):
# a search's generations (best so far, the generation's best, the population mean, the best mixture's alphas) or
# a training run's steps (reward, validation score, KL to the base model).
_SEARCH = (("best", "best so far"), ("generation_best", "generation best"), ("mean_score", "population mean"))
_TRAINING = (("reward", "mean reward (+1/-1)"), ("validation", "validation score"))


def job_panels(job: JobInfo, events: Sequence[JobEvent]) -> tuple[Panel, ...]:
    rows = [(_iteration(e), e.data) for e in events]
    if rows and "best" in rows[0][1]:
        return (Panel("search", "score on the shots", _series(rows, _SEARCH)),
                Panel("mixture", "alpha of the best mixture", _alphas(rows, job)))
    return (Panel("training", "score", _series(rows, _TRAINING)),
            Panel("kl", "KL to the base model", _series(rows, (("kl", "KL"),))))


def _iteration(event: JobEvent) -> float:
    value = event.data.get("iteration")
    return float(value) if isinstance(value, (int, float)) else float(event.seq)


def _series(rows: list[tuple[float, dict[str, Any]]], keys: Iterable[tuple[str, str]]) -> tuple[Series, ...]:
    out = []
    for key, label in keys:
        points = tuple((x, value) for x, data in rows if (value := _number(data.get(key))) is not None)
        if points:
            out.append(Series(label, points))
    return tuple(out)


def _number(value: Any) -> float | None:
    """A plotted value: a number, or a list's first (``best`` carries the score and its tie-breaker)."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        return None
    return float(value)


def _alphas(rows: list[tuple[float, dict[str, Any]]], job: JobInfo) -> tuple[Series, ...]:
    """The best mixture's weights per generation, drawn as `t2reg jobs plot` draws them: in the strength space
    the last coordinate is the strength (shown as s / 3), and a per-matrix search's weights are averaged over
    the matrices, one line per expert."""
    vectors = [(x, data["best_alpha"]) for x, data in rows if isinstance(data.get("best_alpha"), list)]
    if not vectors:
        return ()
    width = len(vectors[0][1])
    xs = [x for x, alpha in vectors if len(alpha) == width]
    alpha = np.asarray([a for _, a in vectors if len(a) == width], dtype=np.float64)
    strength = ()
    if (job.spec or {}).get("mix_space") == "strength":
        strength = (Series("strength s / 3", tuple(zip(xs, map(float, alpha[:, -1])))),)
        alpha = alpha[:, :-1]
    components = list((job.state or {}).get("components") or [])
    if components and alpha.shape[1] > len(components) and alpha.shape[1] % len(components) == 0:
        alpha = alpha.reshape(len(alpha), len(components), -1).mean(axis=2)
    labels = [components[k] if k < len(components) else f"expert {k}" for k in range(alpha.shape[1])]
    return tuple(Series(labels[k], tuple(zip(xs, map(float, alpha[:, k])))) for k in range(alpha.shape[1])) + strength


# -- best per task ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolChoice:
    id: str
    task: str
    described: str
    uses: int


@dataclass(frozen=True)
class BestPage:
    task: str | None
    protocol: str | None  # the one ranked under: the asked one, or the task's default
    protocols: tuple[ProtocolChoice, ...]  # every protocol with scores (the pickers' choices)
    rows: tuple[RankedVersion, ...]  # overlaps_leader marks the rows the CLI marks "~"


BEST_LIMIT = 50


def best_page(registry: Registry, task: str | None, protocol: str | None) -> BestPage:
    """`t2reg best`'s ranking for a task, under the asked protocol or the task's default."""
    choices = tuple(ProtocolChoice(p.id, p.task, describe_spec(p.spec), p.uses) for p in registry.protocols())
    if not task:
        return BestPage(None, None, choices, ())
    rows = tuple(registry.best(task, metric=METRIC, limit=BEST_LIMIT, protocol=protocol or None))
    return BestPage(task, rows[0].protocol if rows else protocol or None, choices, rows)


# -- a paired comparison -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """A question the two subjects answered differently."""

    id: str
    question: str | None  # its text, where the evaluation data is at hand
    prediction_a: str | None
    prediction_b: str | None
    answer: str
    correct_a: bool
    correct_b: bool


@dataclass(frozen=True)
class ComparePage:
    a: str | None
    b: str | None
    protocol: str | None
    protocols: tuple[ProtocolChoice, ...]  # the measured protocols (the picker's choices)
    described: str | None
    paired: PairedRecord | None  # what `t2reg compare --json` prints for the same subjects and protocol
    disagreeing: int  # questions answered differently, all of them
    disagreements: tuple[Disagreement, ...]  # the first DISAGREEMENTS of them
    questions_note: str | None = None  # why question texts are missing, when they are


DISAGREEMENTS = 200  # questions listed on a comparison page


def compare_page(registry: Registry, a: str | None, b: str | None, protocol: str | None,
                 data_dir: str | None) -> ComparePage:
    """`t2reg compare A B --protocol ID` from the recorded per-question results alone: a subject with none under
    the protocol is a NotFoundError, never an evaluation. Without subjects and protocol, only the pickers."""
    from t2reg.adaptation.evaluation.paired import Subject, pair, recorded_rows, spec_of
    from t2reg.adaptation.evaluation.spec import EvalSpec

    choices = tuple(ProtocolChoice(p.id, p.task, describe_spec(p.spec), p.uses) for p in registry.protocols()
                    if is_measured(p.id, p.task))
    if not (a or b or protocol):
        return ComparePage(None, None, None, choices, None, None, 0, ())
    if not (a and b and protocol):
        raise InvalidInputError("give both subjects (NAME:VERSION or base:MODEL) and a protocol")
    stored = registry.protocol(protocol).spec
    spec = spec_of(stored, EvalSpec(task=str(stored.get("task", "")), data_dir=data_dir))  # refuses unmeasured ones
    measured = Protocol.from_dict(stored)
    sides = []
    for text in (a, b):
        rows = recorded_rows(registry, Subject.parse(text), measured, lambda: _sample_ids(spec))
        if rows is None:
            raise NotFoundError(f"{text} has no per-question results recorded under protocol {measured.id}; "
                                "this page only reads recorded results (t2reg compare measures them)")
        sides.append(rows)
    paired = pair(sides[0], sides[1], a, b, measured).record()
    texts, note = _question_texts(measured, data_dir)
    differing = _disagreements(sides[0], sides[1], texts)
    return ComparePage(a, b, measured.id, choices, measured.describe(), paired, len(differing),
                       tuple(differing[:DISAGREEMENTS]), note)


def _sample_ids(spec: Any) -> set[str]:
    """The questions of a sampled protocol, for cutting them from a run on the whole split: drawn from the
    evaluation data on this machine only (the page never fetches a data set)."""
    if spec.data_dir is None:
        raise InvalidInputError("only the whole split is recorded under this protocol's questions; naming the "
                                "sample's questions needs the evaluation data (start t2reg ui with --data-dir)")
    from t2reg.adaptation.evaluation.runs import questions_for

    return {ex.id for ex in questions_for(spec).examples}


def _question_texts(protocol: Protocol, data_dir: str | None) -> tuple[dict[str, str], str | None]:
    """Question id -> text from the evaluation data on this machine, and why there are none if so."""
    if data_dir is None:
        return {}, "question texts need the evaluation data: start t2reg ui with --data-dir"
    from t2reg.adaptation.tasks import get_task

    try:
        examples = get_task(protocol.task).examples(protocol.split, Path(data_dir))
    except (NotFoundError, InvalidInputError) as exc:
        return {}, f"question texts unavailable: {exc}"
    return {ex.id: ex.question for ex in examples}, None


def _disagreements(a_rows: Sequence[Mapping[str, Any]], b_rows: Sequence[Mapping[str, Any]],
                   texts: Mapping[str, str]) -> list[Disagreement]:
    """The paired questions (as :func:`pair` pairs them: by id, in A's order) whose predictions differ."""
    by_id = {row["id"]: row for row in b_rows}
    out = []
    for x in a_rows:
        y = by_id.get(x["id"])
        if y is not None and _text(x["prediction"]) != _text(y["prediction"]):
            out.append(Disagreement(str(x["id"]), texts.get(x["id"]), _text(x["prediction"]),
                                    _text(y["prediction"]), str(x["answer"]), bool(x["correct"]),
                                    bool(y["correct"])))
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- base models ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpectraCache:
    """What ``t2reg model decompose`` has cached for a model."""

    groups: tuple[str, ...]  # module groups with decomposed shards (mlp, attn)
    matrices: int
    fingerprint: str | None


@dataclass(frozen=True)
class ModelRow:
    model: ModelInfo
    spectra: SpectraCache | None  # None: nothing decomposed yet


@dataclass(frozen=True)
class ModelsPage:
    models: tuple[ModelRow, ...]


SPECTRA_MANIFEST = "manifest.json"  # t2reg.spectra.MANIFEST (that module imports torch; this page does not)


def models_page(registry: Registry) -> ModelsPage:
    """Every registered base model (one query) and its spectra cache (one manifest read each, no query)."""
    return ModelsPage(tuple(ModelRow(info, _spectra(registry.spectra_root(info)))
                            for info in registry.list_models()))


def _spectra(root: Path) -> SpectraCache | None:
    try:
        manifest = json.loads((root / SPECTRA_MANIFEST).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, dict) or not shards:
        return None
    groups = sorted({str(name).split("-", 1)[0] for name in shards})  # shards are GROUP-LAYER.safetensors
    matrices = manifest.get("matrices")
    fingerprint = manifest.get("fingerprint")
    return SpectraCache(tuple(groups), len(matrices) if isinstance(matrices, dict) else 0,
                        fingerprint if isinstance(fingerprint, str) else None)
