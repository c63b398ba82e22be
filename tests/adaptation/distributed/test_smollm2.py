"""On the real SmolLM2-135M-Instruct, through the CLI: a CEM search on two replicas reaches the in-process
search's result (same scores, same best alpha, same held-out questions right), and an evaluation sharded
over two replicas answers every question as one process does."""

import json

import pytest

from tests.cli.test_commands import CLI
from tests.helpers.data import require_data

pytestmark = pytest.mark.slow


def test_adapt_and_eval_on_two_replicas_match_one_process(smollm2_home, ray_cluster, tmp_path, capsys):
    cli = CLI(smollm2_home, capsys)
    data = str(require_data())
    for seed in (1, 2):
        path = tmp_path / f"e{seed}.safetensors"
        cli.ok("new-expert", "--model", "smollm2-135m", "--task", "gsm8k", "--noise", "0.1", "--seed", str(seed),
               "--out", str(path))
        cli.ok("publish", str(path), "--name", f"ray-noise-{seed}")
    common = ["adapt", "--model", "smollm2-135m", "--task", "arc-easy", "--pool", "name in (ray-noise-1,ray-noise-2)",
              "--shots", "4", "--heldout", "8", "--population", "4", "--elite", "0.5", "--iterations", "2",
              "--population-eval", "sequential", "--data-dir", data]
    here = cli.json(*common, "--name", "smol-here")
    there = cli.json(*common, "--name", "smol-there", "--replicas", "2")
    for key in ("alpha", "evaluations", "shot_score", "population_eval"):
        assert there[key] == here[key], key
    # (accuracy, tie-break): the same search and accuracy; the tie-break (a mean log-probability) has been seen to
    # differ in its seventh significant digit between a replica and this process (cause not traced)
    assert there["best_score"][0] == here["best_score"][0]
    assert there["best_score"][1] == pytest.approx(here["best_score"][1], rel=1e-6)
    for key in ("heldout", "base"):  # the same verdicts; the mean log-probability to float rounding
        exact = {"seconds": 0, "mean_correct_logprob": 0}
        assert {**there[key], **exact} == {**here[key], **exact}, key
        assert there[key]["mean_correct_logprob"] == pytest.approx(here[key]["mean_correct_logprob"], rel=1e-5), key

    evaluation = ["eval", "--base", "smollm2-135m", "--task", "arc-easy", "--limit", "40", "--data-dir", data]
    cli.ok(*evaluation, "--save-outputs", str(tmp_path / "here.jsonl"))
    sharded = cli.json(*evaluation, "--replicas", "2", "--save-outputs", str(tmp_path / "there.jsonl"))
    here_rows, there_rows = ([json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
                             for name in ("here", "there"))
    assert len(there_rows) == 40
    # The same verdicts exactly; log-probabilities to float rounding (a replica's shard is batched apart from
    # the rest, and CI has seen the seventh digit differ)
    verdict = ("id", "prediction", "answer", "correct", "correct_norm")
    assert [{k: r[k] for k in verdict} for r in there_rows] == [{k: r[k] for k in verdict} for r in here_rows]
    for a, b in zip(there_rows, here_rows):
        assert a["option_logprobs"] == pytest.approx(b["option_logprobs"], rel=1e-5)
        assert a["logprob"] == pytest.approx(b["logprob"], rel=1e-5)
    assert sum(r["units"] for r in sharded["replicas"]) == 40
