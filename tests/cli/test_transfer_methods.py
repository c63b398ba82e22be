"""`t2reg transfer --method projection|distill` through the CLI: a job with a report, reused when asked
again, queued with --detach for a worker, and settings that do not apply refused in one line."""

import pytest

from tests.cli.test_commands import CLI
from tests.helpers.data import DATA, require_data
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture
def two(tmp_path, capsys):
    require_data()
    cli = CLI(tmp_path / "home", capsys)
    save_model_with_tokenizer(tmp_path / "a", "LlamaForCausalLM", seed=0, initializer_range=0.3)
    save_model_with_tokenizer(tmp_path / "b", "Gemma3ForCausalLM", seed=1, initializer_range=0.3, vocab_size=300)
    for folder, alias in (("a", "tiny"), ("b", "other")):
        cli.ok("model", "add", str(tmp_path / folder), "--alias", alias)
        cli.ok("model", "decompose", alias)
    cli.ok("new-expert", "--model", "tiny", "--task", "arc-easy", "--noise", "0.3", "--out", str(tmp_path / "e"))
    cli.ok("publish", str(tmp_path / "e"))
    return cli


def test_projection_runs_as_a_job_prints_its_fit_and_is_reused(two):
    args = ["transfer", "arc-easy-tiny:1", "--to", "other", "--method", "projection", "--n-texts", "60",
            "--data-dir", str(DATA)]
    out = two.ok(*args)
    assert "projection on 60 texts (task:arc-easy:train)" in out and "held-out R^2" in out
    assert "published arc-easy-tiny--to-other--projection:1" in out
    again = two.json(*args)
    assert again["transfers"][0]["reused"] and again["transfers"][0]["published"] == "arc-easy-tiny--to-other--projection:1"
    jobs = two.json("jobs", "list", "--kind", "transfer")
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    shown = two.json("show", "arc-easy-tiny--to-other--projection:1")
    assert shown["source"] == "transferred" and shown["lineage"][0]["params"]["method"] == "projection"


def test_a_detached_distillation_waits_for_a_worker(two):
    queued = two.json("transfer", "arc-easy-tiny:1", "--to", "other", "--method", "distill", "--iterations", "2",
                      "--n-texts", "16", "--validation", "8", "--examples-per-step", "8", "--data-dir", str(DATA), "--detach")
    assert queued["status"] == "queued"
    two.ok("worker", "--once")
    job = two.json("jobs", "show", str(queued["id"]))
    assert job["status"] == "succeeded" and [e["data"]["iteration"] for e in job["events"]] == [1, 2]
    assert job["result"]["transfers"][0]["published"] == "arc-easy-tiny--to-other--distill:1"
    assert "validation" in job["events"][-1]["data"] and "teacher_kl" in job["events"][-1]["data"]


@pytest.mark.parametrize("extra, words", [
    (["--method", "projection", "--beta", "2"], "--beta does not apply to --method projection"),
    (["--method", "rank", "--line-search"], "--line-search does not apply to --method rank"),
    (["--method", "projection", "--checkpoint-by", "kl"], "--checkpoint-by does not apply to --method projection"),
    (["--method", "projection", "--layer-align", "index"], "--layer-align does not apply to --method projection"),
    (["--method", "rank", "--n-texts", "10"], "--n-texts does not apply to --method rank"),
    (["--method", "distill", "--texts-file", "t.txt"], "distill needs multiple-choice questions"),
    (["--method", "projection", "--texts", "arc-easy:test"], "test split"),
    (["--method", "distill", "--texts", "gsm8k"], "distill supports multiple-choice tasks"),
    (["--method", "projection", "--dry-run"], "--dry-run applies to rank transfers"),
    (["--method", "projection", "--texts", "arc-easy", "--texts-file", "t.txt"], "not both"),
])
def test_settings_that_do_not_apply_are_refused_before_anything_runs(two, tmp_path, extra, words):
    (tmp_path / "t.txt").write_text("a text\n")
    extra = [str(tmp_path / "t.txt") if e == "t.txt" else e for e in extra]
    code, _, err = two("transfer", "arc-easy-tiny:1", "--to", "other", "--data-dir", str(DATA), *extra)
    assert code == 4 and words in err and len(err.strip().splitlines()) == 1, err
    assert two.json("list", "--where", "source=transferred") == []
