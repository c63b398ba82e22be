"""The few-shot search's objective over replicas: :class:`ReplicaScorer` keeps :class:`MixtureScorer`'s
contract (``objective``, ``score``, ``measure``, ``candidate``, ``mixture``, ``mode``, ``apply_rule``) with the model on Ray actors.

The pool's z vectors go to each replica once; a generation then sends only alpha vectors, one
candidate per call (``sequential``) or a few per call scored in one pass (``batched``), handed to
whichever replica is free. Each replica runs ``MixtureScorer.objective`` on its candidates, so a
candidate's score is the one an in-process ``sequential`` (or ``batched``) run gives, and the search
takes the same path for the same seed. ``auto`` has nothing to measure across replicas and scores one
candidate per call (the exact path); the choice is checkpointed like auto's.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from t2reg.adaptation.distributed.pool import ReplicaPool, even_chunks
from t2reg.adaptation.distributed.replica import Evaluation, Problem, ReplicaSetup
from t2reg.adaptation.distributed.settings import replica_settings
from t2reg.adaptation.distributed.sharding import evaluate_sharded
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import Progress, resolve_mode
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.search.objective import Candidate, MixtureScorer, remembered
from t2reg.adaptation.tasks import Example, Task
from t2reg.spectra import Spectra

if TYPE_CHECKING:
    from t2reg.adaptation.search.spec import AdaptSpec
    from t2reg.registry import Registry

Score = tuple[float, float]
CHUNKS_PER_REPLICA = 2  # batched: a few chunks each, so a fast replica can take a slow one's share


class ReplicaScorer:
    """Search members scored on a pool of replicas, with the scores :class:`MixtureScorer` gives here."""

    def __init__(self, pool: ReplicaPool, task: Task, spectra: Spectra, vectors: Sequence[dict[str, Any]], rule: str,
                 shape: tuple[int, ...], normalize: bool = False, mode: str = "auto", space: str = "z") -> None:
        self.mode = "batched" if mode == "batched" else "sequential"
        # Reading members as mixtures needs no model: a scorer without an backend does it here, as the replicas do.
        self.local = MixtureScorer(None, task, spectra, vectors, rule, shape, normalize=normalize, mode="sequential",
                                   space=space)
        self.pool, self.task, self.rule, self.space = pool, task, rule, space
        self.apply_rule = self.local.apply_rule
        plain = [{name: np.asarray(v, dtype=np.float32) for name, v in expert.items()} for expert in vectors]
        self.problem = pool.share(Problem(task, plain, rule, tuple(shape), normalize, self.mode, space))
        self.dtype = pool.setup.dtype
        self._examples: dict[tuple[str, ...], Any] = {}

    @property
    def dim(self) -> int:
        return self.local.dim

    def initial_mean(self) -> np.ndarray:
        return self.local.initial_mean()

    def candidate(self, member: np.ndarray) -> Candidate:
        return self.local.candidate(member)

    def mixture(self, candidate: Candidate):
        return self.local.mixture(candidate)

    @property
    def memo(self) -> dict[str, list]:
        return self.local.memo

    def objective(self, population: np.ndarray, examples: Sequence[Example]) -> list[Score]:
        """(accuracy, tie-breaker) per member, each member whose mixture was not scored before
        (:func:`~t2reg.adaptation.search.objective.remembered`) scored by whichever replica is free."""
        population = np.asarray(population)
        candidates = [self.local.candidate(m) for m in population]
        keys = [self.local.key(c, examples) if self.local.mixture(c) is not None else None for c in candidates]

        def score_these(indices: list[int]) -> dict[int, Score]:
            if not indices:
                return {}
            members = population[indices]
            shots = self._shared(examples)
            chunks = ([range(i, i + 1) for i in range(len(members))] if self.mode == "sequential"
                      else even_chunks(len(members), CHUNKS_PER_REPLICA * max(1, self.pool.live)))
            calls = [lambda actor, c=c: actor.score_members.remote(self.problem, shots,
                                                                   np.ascontiguousarray(members[c.start : c.stop]))
                     for c in chunks]
            parts = self.pool.run(calls, units=[len(c) for c in chunks])
            return dict(zip(indices, (tuple(score) for part in parts for score in part)))

        scores, self.local.reused = remembered(keys, self.memo, score_these, self.local.reused)
        return scores

    def score(self, candidate: Candidate, examples: Sequence[Example], progress: Progress | None = None
              ) -> EvalResult:
        """One mixture on the exact path (weights rewritten), its questions sharded over the replicas."""
        return evaluate_sharded(self.pool, Evaluation(self.task, list(examples), candidate=candidate,
                                                      problem=self.problem), progress)

    def measure(self, candidate: Candidate, questions: Questions, progress: Progress | None = None) -> EvalResult:
        """One mixture on ``questions``, under the protocol that names them (as ``MixtureScorer.measure``)."""
        return self._named(self.score(candidate, questions.examples, progress), questions)

    def measure_base(self, questions: Questions, progress: Progress | None = None) -> EvalResult:
        """The base model (no expert) on ``questions``, sharded over the replicas."""
        return self._named(evaluate_sharded(self.pool, Evaluation(self.task, list(questions.examples)), progress),
                           questions)

    def generation_report(self) -> list[dict[str, Any]]:
        """Each replica's throughput since the last report (the job event of a generation carries it)."""
        return self.pool.report()

    def _named(self, result: EvalResult, questions: Questions) -> EvalResult:
        mode = resolve_mode(questions.task, "auto")
        return replace(result, split=questions.split, protocol=questions.protocol(mode, dtype=self.dtype))

    def _shared(self, examples: Sequence[Example]) -> Any:
        # The shots are the same every generation: into the object store once.
        key = tuple(ex.id for ex in examples)
        if key not in self._examples:
            self._examples[key] = self.pool.share(list(examples))
        return self._examples[key]


@contextmanager
def open_replica_scorer(registry: Registry, spec: AdaptSpec, task: Task, vectors: Sequence[dict[str, Any]],
                        rule: str, shape: tuple[int, ...], mode: str) -> Iterator[ReplicaScorer]:
    """A :class:`ReplicaScorer` on ``spec.replicas`` replicas of ``spec.model``; the replicas go when the block ends."""
    setup = ReplicaSetup(str(weights_dir(registry, spec.model)), str(registry.spectra_dir(spec.model)),
                         backend=spec.backend, dtype=spec.dtype, batch_size=spec.batch_size)
    with ReplicaPool(setup, replica_settings(spec)) as pool:
        yield ReplicaScorer(pool, task, load_spectra(spec.model, registry), vectors, rule, shape,
                            normalize=spec.normalize, mode=mode, space=spec.mix_space)
