"""Controls made from an expert: strengths (sign flip included) and random directions of matched size."""

import numpy as np
import pytest

from t2reg.errors import InvalidInputError
from t2reg.transfer.controls import Control, ControlKind, effective, make

VECTORS = {"a": np.array([1.2, 0.9, 1.0, 1.05], dtype=np.float32), "b": np.array([0.5, 1.5], dtype=np.float32)}


def test_strength_scales_the_change_and_minus_one_flips_it():
    for s in (0.0, 0.5, 1.0, 2.0, -1.0):
        out = make(VECTORS, Control(ControlKind.STRENGTH, s))
        for name, z in VECTORS.items():
            assert np.allclose(out[name], np.clip(1 + s * (z - 1), 0, None), atol=1e-6)
    assert Control(ControlKind.STRENGTH, -1).suffix() == "signflip"
    assert Control(ControlKind.STRENGTH, 0.5).suffix() == "strength0p5"


def test_a_random_control_keeps_each_matrix_change_size_and_is_seeded():
    one = make(VECTORS, Control(ControlKind.RANDOM, seed=1))
    for name, z in VECTORS.items():
        assert np.linalg.norm(one[name] - 1) == pytest.approx(np.linalg.norm(z - 1), rel=1e-5)
        assert not np.allclose(one[name], z)
    assert all(np.array_equal(one[n], make(VECTORS, Control(ControlKind.RANDOM, seed=1))[n]) for n in VECTORS)
    assert not np.allclose(one["a"], make(VECTORS, Control(ControlKind.RANDOM, seed=2))["a"])


def test_effective_folds_in_the_nuclear_renormalisation():
    sigmas = {"a": np.array([4.0, 3.0, 2.0, 1.0]), "b": np.array([2.0, 1.0])}
    constant = {"a": np.full(4, 0.5), "b": np.full(2, 0.3)}
    assert all(np.allclose(z, 1) for z in effective(constant, "nuclear", sigmas).values())
    assert np.allclose(effective(VECTORS, "none")["a"], VECTORS["a"])
    with pytest.raises(InvalidInputError, match="singular values"):
        effective(VECTORS, "nuclear")
