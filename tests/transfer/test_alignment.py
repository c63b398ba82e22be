import numpy as np
import pytest

from t2reg.errors import InvalidInputError
from t2reg.transfer.alignment import energy_positions, layer_sources, quantile_positions, resample, shuffle


@pytest.mark.parametrize("ls, lt", [(4, 6), (6, 4), (30, 18), (32, 32), (2, 7), (5, 1)])
def test_relative_layers_hit_the_endpoints_and_move_monotonically(ls, lt):
    feeds = [layer_sources(j, ls, lt, "relative") for j in range(lt)]
    assert feeds[0] == [(0, 1.0)]
    if lt > 1:
        assert feeds[-1] == [(ls - 1, 1.0)]
    positions = [sum(l * w for l, w in f) for f in feeds]
    assert positions == sorted(positions)
    for f in feeds:
        assert abs(sum(w for _, w in f) - 1.0) < 1e-12 and all(0 <= l < ls for l, _ in f)


def test_relative_interpolates_between_the_two_nearest_layers():
    assert layer_sources(1, 4, 7, "relative") == [(0, 0.5), (1, 0.5)]
    assert layer_sources(2, 4, 7, "relative") == [(1, 1.0)]


def test_index_layers_need_equal_depth():
    assert layer_sources(3, 5, 5, "index") == [(3, 1.0)]
    with pytest.raises(InvalidInputError, match="equal depth"):
        layer_sources(0, 5, 6, "index")


def test_quantile_equal_ranks_is_the_identity_and_resampling_keeps_order():
    z = np.linspace(2.0, 0.5, 10, dtype=np.float32)
    assert resample(z, 10, "quantile") is z
    up = resample(z, 25, "quantile")
    down = resample(z, 4, "quantile")
    assert np.all(np.diff(up) <= 0) and np.all(np.diff(down) <= 0)
    assert up[0] == z[0] and up[-1] == z[-1]  # np.interp clamps at the ends
    assert quantile_positions(4).tolist() == [0.125, 0.375, 0.625, 0.875]


def test_energy_positions_follow_the_spectrum():
    sigma = np.array([3.0, 1.0, 1.0, 1.0])
    pos = energy_positions(sigma)
    assert pos[0] == pytest.approx(4.5 / 12) and np.all(np.diff(pos) > 0) and pos[-1] < 1
    z = np.array([4.0, 3.0, 2.0, 1.0], np.float32)
    np.testing.assert_allclose(resample(z, 4, "energy", sigma, sigma), z)
    # A target whose energy sits in its first index takes the source's first value there.
    assert resample(z, 2, "energy", sigma, np.array([10.0, 0.1]))[0] == pytest.approx(4.0, abs=0.5)
    with pytest.raises(InvalidInputError, match="needs both models' singular values"):
        resample(z, 4, "energy")


def test_index_rank_alignment_needs_equal_ranks():
    with pytest.raises(InvalidInputError, match="resample by position: rank_align quantile"):
        resample(np.ones(3, np.float32), 4, "index", what="up")


def test_shuffle_is_a_seeded_permutation_per_matrix():
    z = np.arange(50, dtype=np.float32)
    a, b = shuffle(z, 7, "m.up"), shuffle(z, 7, "m.up")
    assert np.array_equal(a, b) and sorted(a.tolist()) == z.tolist() and not np.array_equal(a, z)
    assert not np.array_equal(a, shuffle(z, 8, "m.up")) and not np.array_equal(a, shuffle(z, 7, "m.down"))
