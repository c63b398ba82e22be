"""The demo's time budget: steps with their wall time and arithmetic, held against the peak measured in
this process."""

import json

import torch

from t2reg.adaptation import flops
from t2reg.adaptation.reporting.budget import Step, TimeBudget, measure_peak


def test_a_matrix_product_peak_is_measured_in_each_dtype():
    assert measure_peak(torch.float32, seconds=0.05, shape=(64, 64, 64)) > 0
    assert measure_peak(torch.bfloat16, seconds=0.05, shape=(64, 64, 64)) > 0


def test_steps_keep_their_time_and_arithmetic_and_their_share_of_the_peak():
    budget = TimeBudget()
    with budget.step("work"):
        flops.add(flops.FORWARD, torch.float32, 6 * 10**9)
        flops.add(flops.REBUILD, torch.float32, 2 * 10**9)
    with budget.step("bookkeeping"):
        pass
    budget.measure_peaks(seconds=0.05)
    work, idle = budget.steps
    assert work.flops == {"float32": 8 * 10**9} and work.kinds == {"forward": 6 * 10**9, "rebuild": 2 * 10**9}
    assert work.fraction(budget.peaks) == (8 * 10**9 / budget.peaks["float32"]) / work.seconds
    assert idle.flops == {} and idle.fraction(budget.peaks) is None
    data = json.loads(json.dumps(budget.to_dict()))
    assert [s["step"] for s in data["steps"]] == ["work", "bookkeeping"] and data["threads"] >= 1
    lines = budget.lines()
    assert lines[1].split()[0] == "work" and lines[2].split()[0] == "bookkeeping" and "of peak" in lines[0]


def test_a_dtype_without_a_measured_peak_has_no_share():
    assert Step("x", 1.0, {"bfloat16": 10}).fraction({"float32": 1e9}) is None
