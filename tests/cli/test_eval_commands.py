"""`t2reg tasks` and `t2reg eval` on a tiny real model with a real tokenizer and the real ARC data."""

import json

import pytest

from tests.helpers.data import DATA
from tests.cli.test_commands import CLI
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture
def cli(tmp_path, capsys):
    if not DATA.is_dir():
        pytest.fail(f"{DATA} is missing")
    save_model_with_tokenizer(tmp_path / "tiny")
    runner = CLI(tmp_path / "home", capsys)
    runner.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    return runner


def test_tasks_list(cli):
    names = {t["name"] for t in cli.json("tasks", "list")}
    assert {"gsm8k", "math", "arc-easy", "arc-challenge", "mbpp", "humaneval"} <= names


def test_eval_base_and_expert_record_scores(cli, tmp_path):
    common = ["--task", "arc-easy", "--limit", "6", "--data-dir", str(DATA)]
    base = cli.json("eval", "--base", "tiny", *common, "--save-outputs", str(tmp_path / "out.jsonl"))
    assert base["n"] == 6 and base["mode"] == "cloze" and 0 <= base["score"] <= 1
    low, high = base["interval95"]
    assert low <= base["score"] <= high
    assert base["protocol"]["n"] == 6 and base["protocol"]["sample_seed"] == 0 and base["protocol"]["mode"] == "cloze"
    assert sum(base["prediction_histogram"].values()) == 6 and 0 < base["constant_baseline"]["accuracy"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"id", "prediction", "answer", "correct", "logprob", "option_logprobs"} <= rows[0].keys()
    shown = cli.json("model", "show", "tiny")
    assert [(e["task"], e["metric"], e["n"], e["source"], e["protocol"]) for e in shown["evaluations"]] == [
        ("arc-easy", m, 6, "eval", base["protocol"]["id"]) for m in ("accuracy", "accuracy_norm", "logprob")]
    assert shown["evaluations"][2]["value"] == base["mean_correct_logprob"] < 0

    cli.ok("model", "decompose", "tiny")
    cli.ok("new-expert", "--model", "tiny", "--task", "arc-easy", "--noise", "0.3", "--out", str(tmp_path / "e.st"))
    cli.ok("publish", str(tmp_path / "e.st"))
    scored = cli.json("eval", "arc-easy-tiny:1", *common)
    best = cli.json("best", "--task", "arc-easy", "--split", "test")
    assert best[0]["ref"] == "arc-easy-tiny:1" and best[0]["value"] == scored["score"] and best[0]["n"] == 6
    assert best[0]["protocol"] == base["protocol"]["id"]
    gen = cli.json("eval", "arc-easy-tiny:1", *common, "--mode", "generate", "--max-new-tokens", "4")
    assert gen["mode"] == "generate" and gen["n"] == 6
    letter = cli.json("eval", "arc-easy-tiny:1", *common, "--mode", "letter", "--permute", "3")
    assert letter["mode"] == "letter" and letter["protocol"]["permute"] == 3


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["eval", "--task", "arc-easy"], 2, "give an expert REF or --base"),
        (["eval", "--base", "tiny", "--task", "nope"], 3, "unknown task 'nope'"),
        (["eval", "--base", "tiny", "--task", "gsm8k", "--mode", "cloze", "--data-dir", "DATA"], 4, "not multiple choice"),
        (["eval", "--base", "tiny", "--task", "arc-easy", "--data-dir", "/nonexistent"], 3, "not found under"),
        (["eval", "--base", "tiny", "--task", "arc-easy", "--limit", "0", "--data-dir", "DATA"], 4, "--limit"),
        (["eval", "--base", "llama3-8b", "--task", "arc-easy", "--data-dir", "DATA"], 3, "no weights registered"),
    ],
)
def test_eval_errors(cli, args, code, words):
    got, _, err = cli(*[str(DATA) if a == "DATA" else a for a in args])
    assert got == code and words in err and err.count("\n") == 1, err
