"""Black-box search over mixture weights alpha: the shared state, settings and optimizer registry
(the built-in optimizers register themselves when the package is imported).

An optimizer proposes a population of alpha vectors, the objective scores each
one, and the optimizer refits. Scores are tuples compared lexicographically, so
accuracy ties are broken by the second entry (the mean log-likelihood of the
correct answers). Every optimizer is seeded and resumable: :class:`SearchState`
is plain data (it is stored as JSON in a job row) and holds everything the next
generation needs, so a resumed search continues exactly where it stopped.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.names import Names

Score = tuple[float, ...]
# The state is stored as JSON and PostgreSQL's json has no infinities, so a member that could not be
# scored (-inf, NaN) is recorded as the lowest finite float: it still ranks below every real score.
FLOOR = -sys.float_info.max
Objective = Callable[[np.ndarray], Sequence[Score]]


@dataclass(frozen=True)
class SearchConfig:
    population: int = 32
    elite_fraction: float = 0.2
    init_std: float = 0.5
    low: float = 0.0
    high: float = 1.0
    iterations: int = 50
    seed: int = 0
    min_std: float = 1e-3  # stop once every coordinate is this certain
    patience: int | None = None  # stop after this many generations without a better best
    tolerance: float = 0.0  # an improvement smaller than this does not reset patience
    # Where the coordinates start: one value for all, one per coordinate, or None for 1/dim. A
    # per-matrix search over K experts starts at 1/K so each matrix's column begins as the uniform
    # mixture, not at 1/(K*M).
    start: float | tuple[float, ...] | None = None

    def initial_mean(self, dim: int) -> np.ndarray:
        if isinstance(self.start, tuple):
            if len(self.start) != dim:
                raise InvalidInputError(f"the search starts at {len(self.start)} coordinates, not {dim}")
            return np.asarray(self.start, dtype=np.float64)
        return np.full(dim, self.start if self.start is not None else 1.0 / dim)

    def validate(self) -> None:
        problems = {
            "population": self.population < 2,
            "elite_fraction": not 0 < self.elite_fraction <= 1,
            "iterations": self.iterations < 1,
            "bounds": self.low >= self.high,
            "init_std": self.init_std <= 0,
            "tolerance": self.tolerance < 0,
            "patience": self.patience is not None and self.patience < 1,
            "start": self.start is not None and not all(self.low <= v <= self.high for v in np.atleast_1d(self.start)),
        }
        bad = [name for name, wrong in problems.items() if wrong]
        if bad:
            raise InvalidInputError(f"bad search settings ({', '.join(bad)}): {self}")


@dataclass
class SearchState:
    """Where a search stands. ``internal`` is the optimizer's own plain-data state."""

    mean: list[float]
    std: list[float]
    iteration: int = 0
    best_alpha: list[float] | None = None
    best_score: list[float] | None = None
    stale: int = 0
    evaluations: int = 0
    internal: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchState":
        return cls(**data)


class Optimizer(ABC):
    """Proposes members and refits from their scores; registered by name."""

    name = "abstract"

    def __init__(self, config: SearchConfig) -> None:
        config.validate()
        self.config = config

    def start(self, dim: int) -> SearchState:
        return SearchState(mean=self.config.initial_mean(dim).tolist(), std=[self.config.init_std] * dim, internal=self._initial(dim))

    def step(self, state: SearchState, objective: Objective) -> SearchState:
        """One generation: propose, score, refit. The old state is left untouched."""
        start = time.monotonic()
        members, propose_state = self._propose(state)
        scores = [_finite(s) for s in objective(members)]
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        mean, std, internal = self._refit(state, propose_state, members, scores, order)
        return _record(state, members, scores, order, mean, std, internal, self.config, time.monotonic() - start)

    def done(self, state: SearchState) -> bool:
        config = self.config
        if state.iteration >= config.iterations or max(state.std) < config.min_std:
            return True
        return config.patience is not None and state.stale >= config.patience

    def run(self, objective: Objective, dim: int, state: SearchState | None = None,
            on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
        """Generations until done; ``on_generation`` sees (and may persist) each new state."""
        state = state or self.start(dim)
        while not self.done(state):
            state = self.step(state, objective)
            if on_generation:
                on_generation(state)
        return state

    @abstractmethod
    def _initial(self, dim: int) -> dict[str, Any]:
        """The optimizer's own starting state (plain data)."""

    @abstractmethod
    def _propose(self, state: SearchState) -> tuple[np.ndarray, Any]:
        """The next population (inside [low, high]) and whatever ``_refit`` needs."""

    @abstractmethod
    def _refit(self, state: SearchState, proposed: Any, members: np.ndarray, scores: list[Score],
               order: list[int]) -> tuple[list[float], list[float], dict[str, Any]]:
        """New mean, per-coordinate std and internal state, from the scored population."""


def _record(state: SearchState, members: np.ndarray, scores: list[Score], order: list[int], mean: list[float],
            std: list[float], internal: dict[str, Any], config: SearchConfig, seconds: float) -> SearchState:
    best = order[0]
    better = state.best_score is None or scores[best] > tuple(state.best_score)
    significant = better and (state.best_score is None or _gain(scores[best], state.best_score) > config.tolerance)
    finite = [s[0] for s in scores if s[0] > FLOOR]
    new = SearchState(
        mean=mean, std=std, iteration=state.iteration + 1,
        best_alpha=members[best].tolist() if better else state.best_alpha,
        best_score=list(scores[best]) if better else state.best_score,
        stale=0 if significant else state.stale + 1,
        evaluations=state.evaluations + len(members),
        internal=internal,
    )
    event = {"iteration": new.iteration, "mean_score": float(np.mean(finite)) if finite else None,
             "std_score": float(np.std(finite)) if finite else None, "generation_best": list(scores[best]),
             "best": new.best_score, "best_alpha": new.best_alpha, "alpha_mean": mean,
             "alpha_std": float(np.mean(std)), "evaluations": new.evaluations, "seconds": seconds}
    new.history = state.history + [event]
    return new


def _finite(score: Sequence[float]) -> Score:
    return tuple(FLOOR if np.isnan(v) else float(np.clip(v, FLOOR, sys.float_info.max)) for v in score)


def _gain(new: Score, old: Sequence[float]) -> float:
    """How much better ``new`` is: in the first score if it moved, else in the tie-breaker."""
    for a, b in zip(new, old):
        if a != b:
            return a - b if np.isfinite(a - b) else float("inf")
    return 0.0


OPTIMIZERS: Names[type[Optimizer]] = Names("optimizer")


def register_optimizer(cls: type[Optimizer]) -> type[Optimizer]:
    return OPTIMIZERS.add(cls.name, cls)


def optimizer_names() -> list[str]:
    return OPTIMIZERS.names()


def check_optimizer(name: str) -> None:
    OPTIMIZERS.check(name, "optimizer")


def get_optimizer(name: str, config: SearchConfig) -> Optimizer:
    return OPTIMIZERS.get(name, "optimizer")(config)
