"""The cross-entropy method over mixture weights alpha (the paper's few-shot search).

A diagonal Gaussian over alpha: sample a population, clamp to [low, high],
score every member, refit mean and std to the elite fraction, repeat. Scores
are tuples compared lexicographically, so accuracy ties are broken by the
second entry (the mean log-likelihood of the correct answers). Seeded and
resumable: :class:`CEMState` holds everything the next generation needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from t2reg.errors import InvalidInputError

Objective = Callable[[np.ndarray], Sequence[tuple[float, ...]]]


@dataclass(frozen=True)
class CEMConfig:
    population: int = 32
    elite_fraction: float = 0.2
    init_std: float = 0.5
    low: float = 0.0
    high: float = 1.0
    iterations: int = 50
    seed: int = 0
    min_std: float = 1e-3  # stop once every coordinate is this certain
    patience: int | None = None  # stop after this many generations without a better best

    def validate(self) -> None:
        if self.population < 2 or not 0 < self.elite_fraction <= 1 or self.iterations < 1 or self.low >= self.high:
            raise InvalidInputError(f"bad CEM settings: {self}")


@dataclass
class CEMState:
    """Everything a resumed search needs; plain data, so it stores as JSON."""

    mean: list[float]
    std: list[float]
    iteration: int = 0
    best_alpha: list[float] | None = None
    best_score: list[float] | None = None
    stale: int = 0
    rng: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


def initial_state(dim: int, config: CEMConfig) -> CEMState:
    rng = np.random.default_rng(config.seed)
    return CEMState(mean=[1.0 / dim] * dim, std=[config.init_std] * dim, rng=rng.bit_generator.state)


def step(state: CEMState, objective: Objective, config: CEMConfig) -> CEMState:
    """One generation: sample, score, refit. Returns the new state (the old one is untouched)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng
    mean, std = np.asarray(state.mean), np.asarray(state.std)
    members = np.clip(mean + std * rng.standard_normal((config.population, len(mean))), config.low, config.high)
    scores = [tuple(float(v) for v in s) for s in objective(members)]
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    elite = members[order[: max(1, round(config.elite_fraction * config.population))]]
    best = order[0]
    improved = state.best_score is None or scores[best] > tuple(state.best_score)
    new = CEMState(
        mean=elite.mean(axis=0).tolist(),
        std=np.maximum(elite.std(axis=0), 0.0).tolist(),
        iteration=state.iteration + 1,
        best_alpha=members[best].tolist() if improved else state.best_alpha,
        best_score=list(scores[best]) if improved else state.best_score,
        stale=0 if improved else state.stale + 1,
        rng=rng.bit_generator.state,
        history=state.history + [{"iteration": state.iteration + 1, "best": list(scores[best]),
                                  "mean_score": float(np.mean([s[0] for s in scores])),
                                  "std": float(np.mean(std)), "alpha_mean": elite.mean(axis=0).tolist()}],
    )
    return new


def done(state: CEMState, config: CEMConfig) -> bool:
    if state.iteration >= config.iterations:
        return True
    if max(state.std) < config.min_std:
        return True
    return config.patience is not None and state.stale >= config.patience


def search(objective: Objective, dim: int, config: CEMConfig = CEMConfig(), state: CEMState | None = None,
           on_generation: Callable[[CEMState], None] | None = None) -> CEMState:
    """Run generations until done; ``on_generation`` sees (and may persist) each new state."""
    config.validate()
    state = state or initial_state(dim, config)
    while not done(state, config):
        state = step(state, objective, config)
        if on_generation:
            on_generation(state)
    return state
