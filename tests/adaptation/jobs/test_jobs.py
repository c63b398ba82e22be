"""Adaptation jobs through real `t2reg` processes: SIGKILL mid-search and resume to the
same result as an uninterrupted run; detached jobs run by `t2reg worker`; cancel; plot."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2reg.cli.context import AppContext
from tests.adaptation.search.test_adapt import build_pool
from tests.helpers.data import DATA
from tests.helpers.paths import ROOT

ADAPT = ["adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "model=tiny", "--pool", "model=other",
         "--shots", "12", "--heldout", "6", "--population", "8", "--elite", "0.5", "--iterations", "12",
         "--population-eval", "sequential", "--data-dir", str(DATA)]


def t2reg(home, *args, **popen):
    cmd = [sys.executable, "-m", "t2reg.cli", "--home", str(home), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **popen)


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


@pytest.mark.slow
def test_a_killed_job_resumes_to_the_result_of_an_uninterrupted_run(tmp_path, capsys):
    homes = {}
    for run in ("whole", "killed"):
        (tmp_path / run).mkdir()
        homes[run] = Path(build_pool(tmp_path / run, capsys).base[1])
    whole = json.loads(finish(t2reg(homes["whole"], *ADAPT, "--json")))

    proc = t2reg(homes["killed"], *ADAPT, "--json")
    registry = AppContext(home=str(homes["killed"])).registry()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not registry.jobs.list() or registry.jobs.get(1).events < 3):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = registry.jobs.get(1)
    assert proc.returncode == -signal.SIGKILL and killed.status == "running"
    assert 3 <= killed.events < whole["iterations"]
    assert registry.list(sources=["adapted"]) == []

    # the dead worker's heartbeat is fresh, so resuming needs --force
    busy = t2reg(homes["killed"], "jobs", "resume", "1")
    assert busy.wait(timeout=120) == 5 and "take the job over (--force)" in busy.stderr.read()
    resumed = json.loads(finish(t2reg(homes["killed"], "jobs", "resume", "1", "--force", "--json")))
    for key in ("published", "components", "alpha", "best_score", "iterations", "evaluations", "heldout", "base"):
        if key in ("heldout", "base"):
            assert {k: v for k, v in resumed[key].items() if k != "seconds"} == \
                   {k: v for k, v in whole[key].items() if k != "seconds"}
        else:
            assert resumed[key] == whole[key], key
    job = registry.jobs.get(1)
    assert job.status == "succeeded" and job.attempts == 2 and job.events == whole["iterations"]
    assert [e.seq for e in registry.jobs.events(1)] == list(range(1, whole["iterations"] + 1))
    assert len(registry.list(sources=["adapted"], all_versions=True)) == 1


def test_detached_jobs_run_on_a_worker_and_can_be_cancelled_and_plotted(tmp_path, capsys):
    cli = build_pool(tmp_path, capsys)
    small = ["adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "model=tiny", "--shots", "3", "--heldout", "3",
             "--population", "4", "--iterations", "2", "--data-dir", str(DATA), "--detach"]
    queued = cli.json(*small)
    assert queued["status"] == "queued" and queued["kind"] == "adapt" and queued["spec"]["pool"] == ["model=tiny"]
    doomed = cli.json(*small)
    assert cli.ok("jobs", "cancel", str(doomed["id"])).strip() == f"cancelled job {doomed['id']}"
    listed = cli.json("jobs", "list")
    assert [(j["id"], j["status"]) for j in listed] == [(doomed["id"], "cancelled"), (queued["id"], "queued")]

    scored = cli.json("eval", "--base", "tiny", "--task", "arc-easy", "--limit", "3", "--data-dir", str(DATA), "--detach")
    moved = cli.json("transfer", "arc-easy-other:1", "--to", "tiny", "--detach")
    out = finish(t2reg(cli.base[1], "worker", "--once", "--kinds", "adapt,eval,transfer"))
    assert out.splitlines() == [f"job {queued['id']} (adapt) succeeded", f"job {scored['id']} (eval) succeeded",
                                f"job {moved['id']} (transfer) succeeded"]
    assert cli.json("jobs", "show", str(scored["id"]))["result"]["n"] == 3
    assert cli.json("jobs", "show", str(moved["id"]))["result"]["transfers"][0]["published"] == \
        "arc-easy-other--to-tiny:1"
    shown = cli.json("jobs", "show", str(queued["id"]))
    assert shown["status"] == "succeeded" and shown["result"]["published"] == "arc-easy-tiny-adapted:1"
    assert [e["data"]["iteration"] for e in shown["events"]] == [1, 2]
    assert cli.json("jobs", "list", "--status", "cancelled")[0]["id"] == doomed["id"]
    assert "steps done" in cli.ok("jobs", "show", str(queued["id"]))

    png = tmp_path / "cem.png"
    assert cli.ok("jobs", "plot", str(queued["id"]), "--out", str(png)).strip() == f"wrote {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    code, _, err = cli("jobs", "plot", str(doomed["id"]), "--out", str(png))
    assert code == 4 and "no completed steps" in err
    code, _, err = cli("jobs", "show", "99")
    assert code == 3 and "no job 99" in err
    code, _, err = cli("worker", "--once", "--kinds", "bake")
    assert code == 3 and "unknown job kind 'bake'" in err  # an unknown name, as an unknown task or model
