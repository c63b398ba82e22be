"""The projection's closed form on synthetic moments: a model onto itself gives the expert back, a linear
correspondence is found and measured, a map fitted on mismatched positions finds nothing."""

import numpy as np
import pytest

from t2reg.errors import InvalidInputError
from t2reg.transfer.projection import Moments, project, report_notes

R, N, HELD = 32, 2400, 600


def _positions(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # unequal variances and a large shared mean, as real activations have
    return rng.normal(size=(N + HELD, R)) * np.linspace(3, 0.3, R) + rng.normal(size=R) * 2


def _moments(b: np.ndarray, c: np.ndarray, seed: int = 1) -> tuple[Moments, Moments]:
    rng = np.random.default_rng(seed)
    fit, held = Moments.zeros(b.shape[1], c.shape[1]), Moments.zeros(b.shape[1], c.shape[1])
    fit.add(b[:N], c[:N], c[:N][rng.permutation(N)])
    held.add(b[N:], c[N:], c[N:][rng.permutation(HELD)])
    return fit, held


SIGMA = np.sort(np.random.default_rng(2).uniform(0.5, 5, R))[::-1]
Z = 1 + 0.1 * np.random.default_rng(3).normal(size=R)


def test_a_model_projected_onto_itself_gives_its_expert_back():
    a = _positions()
    z, fit = project(*_moments(a, a), Z, SIGMA, SIGMA, target="t", source="s")
    assert np.abs(z - Z).max() < 0.01
    assert fit.r2_heldout > 0.999 and fit.expressible_share > 0.999 and fit.transmitted == pytest.approx(1, abs=0.01)
    assert fit.clipped == 0 and fit.positions == N + HELD


def test_a_rotated_target_is_mapped_and_the_fit_says_how_much_of_the_change_it_can_express():
    a = _positions()
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(R, R)))
    c = a @ q.T * 0.7 + 0.05 * np.random.default_rng(5).normal(size=a.shape)
    z, fit = project(*_moments(a, c), Z, SIGMA, SIGMA, target="t", source="s")
    assert fit.r2_heldout > 0.99  # the map is found
    # a rotation mixes directions: the SVF form, diagonal in the target's basis, expresses only part of it
    assert 0.05 < fit.expressible_share < 0.9
    control, cfit = project(*_moments(a, c), Z, SIGMA, SIGMA, target="t", source="s", mismatched=True)
    assert cfit.r2_heldout < 0.05 and cfit.transmitted < 0.05  # no correspondence: nothing carried
    assert np.abs(control - 1).mean() < np.abs(z - 1).mean()


def test_unrelated_targets_get_a_note_and_the_bound_holds():
    a = _positions()
    c = np.random.default_rng(6).normal(size=a.shape)
    z, fit = project(*_moments(a, c), 1 + 3 * (Z - 1), SIGMA, SIGMA, target="t", source="s", bound=0.01)
    assert np.abs(z - 1).max() <= 0.01 + 1e-6
    notes = report_notes([fit])
    assert any("explain under 10 %" in n for n in notes)


def test_moments_survive_their_arrays_and_add_up():
    a = _positions()
    fit, held = _moments(a, a)
    again = Moments.from_arrays(fit.arrays())
    assert again.n == fit.n and np.array_equal(again.cb, fit.cb)
    both = fit + held
    assert both.n == N + HELD and np.allclose(both.bb, a.T @ a)


def test_too_few_positions_or_a_bad_bound_are_refused():
    empty = Moments.zeros(R, R)
    with pytest.raises(InvalidInputError, match="too few aligned positions"):
        project(empty, empty, Z, SIGMA, SIGMA, target="t", source="s")
    a = _positions()
    with pytest.raises(InvalidInputError, match="bound must be positive"):
        project(*_moments(a, a), Z, SIGMA, SIGMA, target="t", source="s", bound=0)
