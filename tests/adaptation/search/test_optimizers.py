"""The optimizers on objectives with a known optimum: found, seeded, resumable through JSON."""

import json

import numpy as np
import pytest

from t2reg.adaptation.search import SearchConfig, SearchState, get_optimizer, optimizer_names
from t2reg.errors import InvalidInputError, UnknownNameError

TARGET = np.array([0.8, 0.1, 0.3])


def quadratic(members):
    return [(-float(np.sum((m - TARGET) ** 2)),) for m in members]


@pytest.mark.parametrize("name", ["cem", "cmaes"])
def test_finds_a_known_optimum(name):
    state = get_optimizer(name, SearchConfig(population=16, iterations=40, seed=1)).run(quadratic, 3)
    assert np.allclose(state.best_alpha, TARGET, atol=0.05)
    assert state.history[-1]["best"][0] > state.history[0]["best"][0]
    assert state.evaluations == 16 * state.iteration


@pytest.mark.parametrize("name", ["cem", "cmaes"])
def test_seeded_runs_are_identical_and_resume_gives_the_same_result(name):
    config = SearchConfig(population=16, iterations=12, seed=3, min_std=0)
    full = get_optimizer(name, config).run(quadratic, 3)
    partial = get_optimizer(name, SearchConfig(population=16, iterations=5, seed=3, min_std=0)).run(quadratic, 3)
    stored = SearchState.from_dict(json.loads(json.dumps(partial.to_dict())))  # as a job row stores it
    resumed = get_optimizer(name, config).run(quadratic, 3, state=stored)
    assert resumed.iteration == full.iteration == 12
    assert resumed.best_alpha == full.best_alpha and resumed.mean == full.mean
    assert [h["best"] for h in resumed.history] == [h["best"] for h in full.history]


@pytest.mark.parametrize("name", ["cem", "cmaes"])
def test_ties_on_the_first_score_are_broken_by_the_second(name):
    def tied(members):
        return [(1.0, -abs(float(m[0]) - 0.6)) for m in members]  # accuracy equal, log-likelihood decides

    state = get_optimizer(name, SearchConfig(population=24, iterations=25, seed=0)).run(tied, 2)
    assert state.best_alpha[0] == pytest.approx(0.6, abs=0.05)


def test_members_stay_in_bounds_and_patience_stops_early():
    seen = []

    def flat(members):
        seen.append(members.copy())
        return [(0.0,)] * len(members)

    for name in optimizer_names():
        seen.clear()
        state = get_optimizer(name, SearchConfig(population=8, iterations=50, patience=3, seed=0)).run(flat, 4)
        assert state.iteration == 4, name
        assert all((m >= 0).all() and (m <= 1).all() for m in seen), name


def test_tolerance_ignores_tiny_improvements():
    scores = iter(range(1000))

    def creeping(members):
        return [(1e-6 * next(scores),) for _ in members]  # always a little better, never by much

    config = SearchConfig(population=10, elite_fraction=0.5, iterations=50, patience=2, tolerance=1e-3, min_std=0)
    state = get_optimizer("cem", config).run(creeping, 2)
    assert state.iteration == 3  # the first generation sets the best; two more without a real gain


def test_initial_mean_is_uniform_and_bad_settings_are_refused():
    assert get_optimizer("cem", SearchConfig()).start(4).mean == [0.25] * 4
    with pytest.raises(InvalidInputError):
        get_optimizer("cem", SearchConfig(population=1))
    with pytest.raises(UnknownNameError, match="unknown optimizer 'adam'; choose from cem, cmaes") as info:
        get_optimizer("adam", SearchConfig())
    assert (info.value.kind, info.value.name, info.value.known) == ("optimizer", "adam", ("cem", "cmaes"))
    with pytest.raises(InvalidInputError, match="at least two coefficients"):
        get_optimizer("cmaes", SearchConfig()).start(1)


@pytest.mark.parametrize("name", ["cem", "cmaes"])
def test_unscorable_members_rank_last_and_the_state_stays_plain_json(name):
    def half_unusable(members):
        return [(float("-inf"), float("nan")) if m[0] < 0.5 else (float(m[0]), 0.0) for m in members]

    state = get_optimizer(name, SearchConfig(population=12, iterations=4, seed=0)).run(half_unusable, 2)
    assert state.best_alpha[0] >= 0.5
    json.dumps(state.to_dict(), allow_nan=False)  # as PostgreSQL's json must store it
    first = get_optimizer(name, SearchConfig(population=4, iterations=1, seed=0)).run(lambda m: [(float("-inf"),)] * 4, 2)
    json.dumps(first.to_dict(), allow_nan=False)
    assert first.history[0]["mean_score"] is None
