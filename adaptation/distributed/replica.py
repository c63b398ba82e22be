"""One model replica: a Ray actor that loads the model (and its spectra) once and scores what it is sent.

What travels to a replica is small: the job's problem once (the task, the pool's z vectors, the
mixture rule) and then alpha vectors, or an evaluation's questions once and then index ranges. Both
go through Ray's object store as :class:`Shared` handles; a replica keeps the few it saw last, so a
generation's many calls unpack the problem once. Nothing is read with pickle from outside the job:
the model and spectra come from safetensors files on the replica's node.

Each method runs the very code the in-process path runs (:class:`MixtureScorer.objective` and
``score``, :func:`evaluate`), so a replica's answer for a candidate is the one this process would give.
The class is plain Python; :mod:`t2reg.adaptation.distributed.pool` makes it a Ray actor.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from t2reg.adaptation.tasks import Example, Task
from t2reg.errors import NotFoundError
from t2reg.expert_file import Expert

_CACHE_SIZE = 8


@dataclass(frozen=True)
class Shared:
    """A payload put once into Ray's object store; ``ref`` rides inside, so Ray does not fetch it per call
    and the replica can keep what it unpacked under ``key``."""

    key: str
    ref: Any


@dataclass(frozen=True)
class ReplicaSetup:
    """Where a replica's model lives and how to load it."""

    model_dir: str
    spectra_dir: str | None  # None: the work needs no spectra (a base-model evaluation)
    backend: str = "hf"
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 16
    threads: int = 1


@dataclass(frozen=True)
class Problem:
    """A search's fixed part: what :class:`MixtureScorer` needs besides the backend."""

    task: Task
    vectors: list[dict[str, np.ndarray]]
    rule: str
    shape: tuple[int, ...]
    normalize: bool
    mode: str  # sequential or batched
    space: str = "z"  # the mixing space (t2reg.adaptation.patching.mixing)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation to shard: its questions, how to score them, and what answers them: the base model,
    an ``expert``, or the mixture ``candidate`` of a ``problem``'s pool (scored as ``MixtureScorer.score``
    does)."""

    task: Task
    examples: list[Example]
    split: str = "test"
    mode: str = "auto"
    reference_logprob: bool = True  # as evaluate() does
    permute: int = 1
    expert: Expert | None = None
    candidate: Any = None  # a t2reg.adaptation.search.objective.Candidate
    problem: Shared | None = None


@dataclass(frozen=True)
class Timed:
    """A replica's answer, the seconds it spent computing it, and who it is."""

    value: Any
    seconds: float
    replica: str


@dataclass
class Replica:
    setup: ReplicaSetup
    _backend: Any = field(default=None, repr=False)
    _spectra: Any = field(default=None, repr=False)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @property
    def name(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def ready(self) -> dict[str, Any]:
        """Load the model (once) and say where it runs."""
        start = time.perf_counter()
        backend = self._load()
        import torch

        return {"replica": self.name, "device": str(backend.device), "threads": torch.get_num_threads(),
                "load_seconds": time.perf_counter() - start}

    def score_members(self, problem: Shared, examples: Shared, members: np.ndarray) -> Timed:
        """``MixtureScorer.objective`` for some members of a generation: one (accuracy, tie-breaker) each."""
        start = time.perf_counter()
        scores = self._scorer(problem).objective(np.asarray(members), self._get(examples))
        return Timed(scores, time.perf_counter() - start, self.name)

    def evaluate(self, work: Shared, begin: int, end: int) -> Timed:
        """The evaluation's questions ``begin:end``, with every per-question output."""
        from t2reg.adaptation.evaluation.scoring import evaluate

        start = time.perf_counter()
        evaluation: Evaluation = self._get(work)
        shard = evaluation.examples[begin:end]
        backend = self._load()
        if evaluation.candidate is not None:
            result = self._scorer(evaluation.problem).score(evaluation.candidate, shard)
        elif evaluation.expert is not None:
            with backend.patched(self._load_spectra(), evaluation.expert):
                result = evaluate(backend, evaluation.task, shard, evaluation.split, evaluation.mode,
                                  reference_logprob=evaluation.reference_logprob, permute=evaluation.permute)
        else:
            result = evaluate(backend, evaluation.task, shard, evaluation.split, evaluation.mode,
                              reference_logprob=evaluation.reference_logprob, permute=evaluation.permute)
        return Timed(result, time.perf_counter() - start, self.name)

    # -- what the replica keeps ----------------------------------------------------------------

    def _load(self):
        if self._backend is None:
            import torch

            from t2reg.adaptation.backends import open_backend

            torch.set_num_threads(self.setup.threads)
            model_dir = Path(self.setup.model_dir)
            if not model_dir.is_dir():
                raise NotFoundError(f"replica {self.name}: no model files at {model_dir} (every Ray node must see "
                                    "the registry's files at the same paths)")
            self._backend = open_backend(self.setup.backend, model_dir, device=self.setup.device,
                                        dtype=self.setup.dtype, batch_size=self.setup.batch_size)
        return self._backend

    def _load_spectra(self):
        if self._spectra is None:
            from t2reg.spectra import Spectra

            if self.setup.spectra_dir is None or not Path(self.setup.spectra_dir).is_dir():
                raise NotFoundError(f"replica {self.name}: no spectra at {self.setup.spectra_dir}")
            self._spectra = Spectra.load(Path(self.setup.spectra_dir))
        return self._spectra

    def _get(self, shared: Shared) -> Any:
        """The payload behind ``shared``, fetched from the object store the first time only."""
        if shared.key not in self._cache:
            import ray

            self._cache[shared.key] = _prepare(ray.get(shared.ref))
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(shared.key)
        return self._cache[shared.key]

    def _scorer(self, problem: Shared):
        key = f"scorer:{problem.key}"
        if key not in self._cache:
            from t2reg.adaptation.search.objective import MixtureScorer

            p: Problem = self._get(problem)
            self._cache[key] = MixtureScorer(self._load(), p.task, self._load_spectra(), p.vectors, p.rule, p.shape,
                                             normalize=p.normalize, mode=p.mode, space=p.space)
        self._cache.move_to_end(key)
        return self._cache[key]


def _prepare(payload: Any) -> Any:
    """Arrays out of the object store are read-only views; a problem's vectors become writable copies once
    (torch refuses to wrap read-only memory without a warning per call)."""
    if isinstance(payload, Problem):
        return replace(payload, vectors=[_writable(vectors) for vectors in payload.vectors])
    if isinstance(payload, Evaluation) and payload.expert is not None:
        return replace(payload, expert=replace(payload.expert, vectors=_writable(payload.expert.vectors)))
    return payload


def _writable(vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.array(v) for name, v in vectors.items()}
