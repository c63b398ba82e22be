"""Threads from the cores nobody else is using, or as the environment says."""

import pytest
import torch

from t2reg.adaptation.backends.threads import (
    ENV,
    busy_elsewhere,
    choose_threads,
    others_busy,
    threads_wanted,
    use_free_cores,
    usable_cores,
)
from t2reg.errors import InvalidInputError


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, busy, threads", [
    (2, 0.0, 2), (2, 0.25, 2),  # idle, or a little background noise: both cores
    (2, 0.6, 1), (2, 1.0, 1), (2, 1.3, 1),  # one core taken
    (2, 5.0, 1),  # a machine loaded past its cores still gets one thread
    (16, 3.2, 13), (16, 3.5, 12), (1, 0.0, 1),
])
def test_the_count_is_the_cores_others_leave_free(cores, busy, threads):
    assert choose_threads(cores, busy) == threads


def test_this_processs_own_time_is_not_counted_as_someone_elses():
    # 1.5 s of all cores' busy time in a 1 s window, 1.0 s of it ours: others kept half a core busy
    assert others_busy(150, 100, 1.0, 1.0) == pytest.approx(0.5)
    assert others_busy(100, 100, 1.2, 1.0) == 0.0  # accounting granularity never makes it negative


def test_a_live_sample_of_the_machine_is_a_share_of_its_cores():
    busy = busy_elsewhere(0.05)
    assert 0.0 <= busy and usable_cores() >= 1


def test_the_environment_fixes_the_count(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    assert threads_wanted() == 1 and use_free_cores() == 1 and torch.get_num_threads() == 1
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(1)
    assert threads_wanted() is None and use_free_cores() == 1  # OpenMP's own setting is left as it is


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_count_in_the_environment_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(InvalidInputError, match=ENV):
        threads_wanted()
