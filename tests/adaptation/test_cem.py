import json

import numpy as np
import pytest

from t2reg.adaptation.cem import CEMConfig, initial_state, search, step
from t2reg.errors import InvalidInputError

TARGET = np.array([0.8, 0.1, 0.3])



def quadratic(members):
    return [(-float(np.sum((m - TARGET) ** 2)),) for m in members]


def test_finds_a_known_optimum():
    state = search(quadratic, 3, CEMConfig(population=32, iterations=40, seed=1))
    assert np.allclose(state.best_alpha, TARGET, atol=0.05)
    assert state.history[-1]["best"][0] > state.history[0]["best"][0]


def test_seeded_runs_are_identical_and_resume_gives_the_same_result():
    config = CEMConfig(population=16, iterations=12, seed=3)
    full = search(quadratic, 3, config)
    partial = search(quadratic, 3, CEMConfig(population=16, iterations=5, seed=3))
    resumed_state = type(partial)(**json.loads(json.dumps(partial.__dict__)))  # through JSON, as a job row stores it
    resumed = search(quadratic, 3, config, state=resumed_state)
    assert resumed.best_alpha == full.best_alpha and resumed.mean == full.mean
    assert resumed.iteration == full.iteration > 5 and resumed.history == full.history


def test_ties_on_the_first_score_are_broken_by_the_second():
    def tied(members):
        return [(1.0, -abs(float(m[0]) - 0.6)) for m in members]  # accuracy equal, log-likelihood decides

    state = search(tied, 1, CEMConfig(population=24, iterations=25, seed=0))
    assert state.best_alpha[0] == pytest.approx(0.6, abs=0.05)


def test_members_stay_in_bounds_and_patience_stops_early():
    seen = []

    def flat(members):
        seen.append(members.copy())
        return [(0.0,)] * len(members)

    state = search(flat, 4, CEMConfig(population=8, iterations=50, patience=3, seed=0))
    assert state.iteration == 4 and all((m >= 0).all() and (m <= 1).all() for m in seen)


def test_initial_mean_is_uniform_and_bad_settings_are_refused():
    assert initial_state(4, CEMConfig()).mean == [0.25] * 4
    with pytest.raises(InvalidInputError):
        search(quadratic, 3, CEMConfig(population=1))
    assert step(initial_state(3, CEMConfig(seed=0)), quadratic, CEMConfig(seed=0)).iteration == 1
