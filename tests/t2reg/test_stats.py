"""The statistics behind every reported number, against hand-computed cases."""

import pytest

from t2reg.stats import constant_baseline, intervals_overlap, mcnemar_exact, paired_bootstrap, wilson_interval


def test_wilson_interval_matches_the_published_formula():
    low, high = wilson_interval(8, 10)  # textbook value: 0.490 to 0.943
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("only_x, only_y, p", [
    (0, 0, 1.0),  # no discordant question: nothing to tell apart
    (0, 5, 2 / 32),  # all five discordant go one way: 2 * (1/2)^5
    (1, 9, 2 * (1 + 10) / 1024),  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    (9, 1, 2 * (1 + 10) / 1024),  # symmetric
    (5, 5, 1.0),  # capped at 1
])
def test_mcnemar_exact_by_hand(only_x, only_y, p):
    assert mcnemar_exact(only_x, only_y) == pytest.approx(p, rel=1e-12)


def test_mcnemar_stays_exact_at_large_n():
    assert 0 < mcnemar_exact(900, 1100) < 1e-5  # no underflow, no overflow
    assert mcnemar_exact(1000, 1000) == 1.0


def test_paired_bootstrap_brackets_the_mean_and_is_seeded():
    differences = [1] * 30 + [0] * 70  # mean 0.3; the normal approximation gives 0.21 to 0.39
    low, high = paired_bootstrap(differences, seed=1)
    assert 0.18 < low < 0.24 and 0.36 < high < 0.42
    assert paired_bootstrap(differences, seed=1) == (low, high)
    assert paired_bootstrap([0.0] * 50) == (0.0, 0.0) and paired_bootstrap([]) == (0.0, 0.0)


def test_constant_baseline_and_overlap():
    assert constant_baseline(list("ABBBC")) == ("B", 0.6)
    assert constant_baseline([]) == (None, 0.0)
    assert intervals_overlap((0.1, 0.3), (0.25, 0.5)) and not intervals_overlap((0.1, 0.2), (0.3, 0.4))
