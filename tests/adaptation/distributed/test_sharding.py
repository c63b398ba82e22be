"""Evaluations sharded over replicas give the per-question results of one process: the base model, an
expert, generation and option scoring; through `t2reg eval --replicas` and a `t2reg worker --replicas`
that runs a queued eval job on the shared Ray runtime."""

import dataclasses
import json
import subprocess
import sys


from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.distributed.pool import ReplicaPool
from t2reg.adaptation.distributed.replica import Evaluation, ReplicaSetup
from t2reg.adaptation.distributed.settings import ReplicaSettings
from t2reg.adaptation.distributed.sharding import evaluate_sharded, shard_size
from t2reg.adaptation.evaluation.scoring import evaluate
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.tasks import get_task
from tests.cli.test_commands import CLI
from tests.helpers.data import require_data
from tests.helpers.paths import ROOT


def test_shards_are_whole_calls_in_every_mode():
    # option scoring hands the backend 8 batches (at least 32 questions) a call, generation one (at least 16)
    assert shard_size(4) == 32 and shard_size(16) == 128 and shard_size(64) == 512
    assert shard_size(24) == 192  # 24-prompt generation calls and 192-question option calls both divide it


def test_sharded_evaluations_match_one_process_question_by_question(world, ray_cluster):
    task = get_task("arc-easy")
    questions = task.examples("test", require_data())[:70]  # shards of 32, 32 and 6 at batch size 4
    expert = world.read_expert("e1:1")
    short = dataclasses.replace(task, max_new_tokens=4)
    cases = {"base": Evaluation(task, questions), "expert": Evaluation(task, questions, expert=expert),
             "generate": Evaluation(short, questions[:40], mode="generate", reference_logprob=True),
             "empty": Evaluation(task, [])}
    setup = ReplicaSetup(str(weights_dir(world, "tiny")), str(world.spectra_dir("tiny")), batch_size=4)
    with ReplicaPool(setup, ReplicaSettings(2)) as pool:
        sharded = {name: evaluate_sharded(pool, case) for name, case in cases.items()}
        report = pool.report()
    assert sum(r["units"] for r in report) == 70 + 70 + 40 and all(r["units"] > 0 for r in report)
    with open_backend("hf", weights_dir(world, "tiny"), batch_size=4) as backend:
        here = {name: evaluate(backend, case.task, case.examples, mode=case.mode,
                               reference_logprob=case.reference_logprob) for name, case in cases.items()
                if case.expert is None}
        with backend.patched(load_spectra("tiny", world), expert):
            here["expert"] = evaluate(backend, task, questions)
    for name, result in sharded.items():
        assert result.outputs == here[name].outputs, name
        assert {**result.to_dict(), "seconds": 0} == {**here[name].to_dict(), "seconds": 0}, name
    assert sharded["base"].outputs != sharded["expert"].outputs  # the expert was applied on the replicas


def test_eval_with_replicas_through_the_cli_and_a_worker(world, ray_cluster, tmp_path, capsys):
    cli = CLI(world.settings.home, capsys)
    common = ["--base", "tiny", "--task", "arc-easy", "--limit", "40", "--batch-size", "4",
              "--data-dir", str(require_data())]
    here = cli.json("eval", *common, "--save-outputs", str(tmp_path / "here.jsonl"))
    there = cli.json("eval", *common, "--replicas", "2", "--save-outputs", str(tmp_path / "there.jsonl"))
    assert (tmp_path / "here.jsonl").read_text() == (tmp_path / "there.jsonl").read_text()
    assert {**there, "seconds": 0, "replicas": None} == {**here, "seconds": 0, "replicas": None}
    assert [r["replica"] for r in there["replicas"]] == ["r0", "r1"] and sum(r["units"] for r in there["replicas"]) == 40

    queued = cli.json("eval", *common, "--detach")
    worker = subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(world.settings.home), "worker", "--once",
                             "--kinds", "eval", "--replicas", "2", "--ray", ray_cluster],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert worker.returncode == 0, worker.stderr[-2000:]
    job = world.jobs.get(queued["id"])
    assert job.status == "succeeded", job.error
    assert job.spec.get("replicas") is None  # the worker's setting, not the job's
    assert [r["replica"] for r in job.result["replicas"]] == ["r0", "r1"]
    assert {**job.result, "seconds": 0, "replicas": None} == {**here, "seconds": 0, "replicas": None}
    assert json.loads(json.dumps(job.result))  # plain JSON in the job row
