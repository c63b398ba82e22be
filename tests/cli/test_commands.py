"""The CLI end to end: the README's tour, JSON output, exit codes and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from t2reg.cli.main import _run
from t2reg.registry import schema
from tests.helpers.experts import make_expert, write
from tests.t2reg.test_expert_file import BAD_FILES

T2REG = [sys.executable, "-m", "t2reg.cli"]


class CLI:
    """Runs t2reg in this process (fast) against one home; returns (code, stdout, stderr).

    The registry is created first (``t2reg init``) unless ``init`` is false: no other command makes one.
    """

    def __init__(self, home: Path, capsys, db: str | None = None, init: bool = True):
        self.base = ["--home", str(home)] + (["--db", db] if db else [])
        self.capsys = capsys
        if init:
            self.ok("init")

    def __call__(self, *args: str):
        self.capsys.readouterr()
        code = _run(self.base + list(args), debug=False)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def cli(tmp_path, capsys, backend, request):
    db = None
    if backend == "postgres":
        import uuid

        server = request.getfixturevalue("postgres")
        db = server.create_database(f"c_{uuid.uuid4().hex[:12]}", template=server.template)
    return CLI(tmp_path / "home", capsys, db)


@pytest.fixture
def tiny_expert(tiny_llama_dir, tmp_path):
    from t2reg.registry.model_sources import from_directory

    shapes = {k: tuple(v) for k, v in from_directory(tiny_llama_dir).shapes().items()}
    return lambda seed=0: write(make_expert(shapes, "tiny-llama", seed=seed), tmp_path / f"e{seed}.safetensors")


def test_the_readme_tour(cli, tiny_llama_dir, tiny_expert, tmp_path):
    cli.ok("init")
    assert "tiny-llama" in cli.ok("model", "add", str(tiny_llama_dir), "--alias", "tiny")
    models = cli.json("model", "list")
    assert {"tiny-llama", "meta-llama/Meta-Llama-3-8B-Instruct"} <= {m["name"] for m in models}
    path = tiny_expert()
    assert cli.ok("publish", str(path), "--model", "tiny", "--task", "gsm8k",
                  "--metric", "gsm8k:accuracy=0.79", "--tag", "seed=3").strip() == "gsm8k-tiny:1"
    listed = cli.json("list", "--model", "tiny", "--task", "gsm8k")
    assert [e["ref"] for e in listed] == ["gsm8k-tiny:1"] and listed[0]["tags"] == {}
    shown = cli.json("show", "gsm8k-tiny:1")
    assert shown["tags"] == {"seed": "3"} and shown["evaluations"][0]["value"] == 0.79
    cli.ok("record", "gsm8k-tiny:1", "--metric", "gsm8k:accuracy=0.81", "--split", "test", "--n", "1319")
    best = cli.json("best", "--task", "gsm8k", "--model", "tiny", "--metric", "accuracy", "--limit", "5",
                    "--source", "native,transferred")
    assert [(b["ref"], b["value"], b["split"], b["n"]) for b in best] == [("gsm8k-tiny:1", 0.81, "test", 1319)]
    assert "gsm8k-tiny@production -> gsm8k-tiny:1" in cli.ok("alias", "gsm8k-tiny:1", "production")
    assert cli.json("show", "gsm8k-tiny@production")["version"] == 1
    assert cli.json("tag", "gsm8k-tiny:1", "reviewed=yes")["tags"] == {"seed": "3", "reviewed": "yes"}
    cli.ok("download", "gsm8k-tiny:1", "--out", str(tmp_path / "copy.safetensors"))
    assert (tmp_path / "copy.safetensors").read_bytes() == path.read_bytes()
    assert "deleted gsm8k-tiny:1" in cli.ok("delete", "gsm8k-tiny:1")
    assert cli.json("list") == []
    assert cli.ok("publish", str(tiny_expert(1)), "--model", "tiny", "--task", "gsm8k").strip() == "gsm8k-tiny:2"
    assert cli.json("verify")["ok"] is True
    assert "removed 0 blob(s)" in cli.ok("gc")
    assert "(head)" in cli.ok("db", "current")
    assert f"at revision {schema.head_revision()}" in cli.ok("db", "upgrade")
    assert "at revision 0001" in cli.ok("db", "downgrade", "0001")
    code, _, err = cli("list")
    assert code == 1 and "upgrade its schema: `t2reg db upgrade`" in err
    assert f"at revision {schema.head_revision()}" in cli.ok("db", "upgrade")


def test_human_output_of_show_and_best(cli, tiny_llama_dir, tiny_expert):
    cli.ok("model", "add", str(tiny_llama_dir), "--alias", "tiny")
    cli.ok("publish", str(tiny_expert()), "--model", "tiny", "--task", "gsm8k", "--metric", "accuracy=0.5")
    shown = cli.ok("show", "gsm8k-tiny")
    assert "gsm8k-tiny:1" in shown and "evaluations:" in shown and "0.5" in shown
    table = cli.ok("best", "--task", "gsm8k").splitlines()
    assert table[0] == "protocol reported:gsm8k: recorded by hand; how it was measured is not known"
    assert table[1].split()[:3] == ["RANK", "REF", "MODEL"] and "gsm8k-tiny:1" in table[2]
    code, out, err = cli("best", "--task", "gsm8k", "--metric", "f1")
    assert code == 0 and out == "" and "this task has: accuracy" in err


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["show", "a:b:c"], 4, "bad reference 'a:b:c'"),
        (["show", "x:0"], 4, "whole number from 1"),
        (["show", "x:-1"], 4, "bad reference"),
        (["show", "nope"], 3, "no expert named 'nope'"),
        (["show", "gsm8k-tiny@nope"], 3, "no alias 'nope'"),
        (["best"], 2, "Missing option '--task'"),
        (["best", "--task", "gsm8k", "--limit", "0"], 2, "--limit"),
        (["publish", "/nonexistent.safetensors", "--model", "tiny"], 4, "no such file"),
        (["model", "add", "smollm2-135m", "--alias", "tiny"], 5, "already names model"),
        (["model", "add", "/nonexistent-dir-xyz"], 3, "neither a model directory"),
        (["record", "gsm8k-tiny:1", "--metric", "accuracy"], 4, "expected TASK:METRIC=VALUE"),
        (["record", "gsm8k-tiny:1", "--metric", "accuracy=abc"], 4, "is not a number"),
        (["tag", "gsm8k-tiny:1"], 2, "give KEY=VALUE"),
        (["delete", "gsm8k-tiny"], 4, "name the version"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_errors_are_one_line_with_distinct_exit_codes(cli, tiny_llama_dir, tiny_expert, args, code, words):
    cli.ok("model", "add", str(tiny_llama_dir), "--alias", "tiny")
    cli.ok("publish", str(tiny_expert()), "--model", "tiny", "--task", "gsm8k")
    got, out, err = cli(*args)
    assert got == code, err
    assert words in err and err.startswith("t2reg: error:") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("case", ["truncated", "non-string metadata", "NaN", "integer dtype"])
def test_bad_files_exit_4_and_publish_nothing(cli, tiny_llama_dir, tmp_path, case):
    cli.ok("model", "add", str(tiny_llama_dir), "--alias", "tiny")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(BAD_FILES[case][0]())
    code, _, err = cli("publish", str(bad), "--model", "tiny", "--task", "gsm8k")
    assert code == 4 and BAD_FILES[case][1] in err
    assert cli.json("list", "--all-versions") == []


def test_model_mismatch_between_flag_and_file_exits_5(cli, tiny_llama_dir, tiny_expert):
    cli.ok("model", "add", str(tiny_llama_dir), "--alias", "tiny")
    code, _, err = cli("publish", str(tiny_expert()), "--model", "smollm2-135m", "--task", "gsm8k")
    assert code == 5 and "the file says its base model is 'tiny-llama'" in err


def test_verify_exits_non_zero_on_a_corrupt_blob(cli, tiny_llama_dir, tiny_expert, tmp_path):
    cli.ok("model", "add", str(tiny_llama_dir), "--alias", "tiny")
    cli.ok("publish", str(tiny_expert()), "--model", "tiny", "--task", "gsm8k")
    sha = cli.json("show", "gsm8k-tiny:1")["sha256"]
    blob = next((tmp_path / "home" / "blobs").rglob(sha))
    blob.write_bytes(b"flipped")
    code, out, err = cli("verify")
    assert code == 1 and f"corrupt  {sha}" in out and "1 corrupt" in err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_real_subprocess_console_script(backend, tmp_path, tiny_llama_dir):
    env = {**os.environ, "T2REG_HOME": str(tmp_path / "home")}
    run = lambda *a: subprocess.run([*T2REG, *a], capture_output=True, text=True, env=env)  # noqa: E731
    assert run("init").returncode == 0
    bad = run("show", "x:0")
    assert bad.returncode == 4 and bad.stderr.count("\n") == 1 and bad.stdout == ""
    unreachable = run("--db", "postgresql+psycopg://u@127.0.0.1:1/x", "list")
    assert unreachable.returncode == 1 and "Connection refused" in unreachable.stderr
    assert unreachable.stderr.count("\n") == 1
    debug = run("--debug", "show", "x:0")
    assert debug.returncode == 4 and "Traceback" in debug.stderr
    assert "Usage:" in run("--help").stdout and "publish" in run("--help").stdout


def test_transfer_commands(cli, tmp_path):
    path = tmp_path / "l.safetensors"
    cli.ok("new-expert", "--model", "llama3-8b", "--task", "gsm8k", "--noise", "0.1", "--out", str(path))
    cli.ok("publish", str(path), "--metric", "accuracy=0.79")
    out = cli.ok("transfer", "gsm8k-llama3-8b:1", "--to", "mistral-7b")
    assert "published gsm8k-llama3-8b--to-mistral-7b:1" in out and "ROLE" in out
    shuffled = cli.json("transfer", "--from", "llama3-8b", "--to", "mistral-7b", "--baseline", "shuffled", "--seed", "7")
    assert shuffled[0]["published"] == "gsm8k-llama3-8b--to-mistral-7b--shuffled:1"
    dry = cli.json("transfer", "gsm8k-llama3-8b:1", "--to", "smollm2-135m", "--dry-run")
    assert dry[0]["published"] is None and dry[0]["report"]["roles"][0]["mapped"] == 30
    assert "transferred_from" in cli.ok("show", "gsm8k-llama3-8b--to-mistral-7b")
    best = cli.json("best", "--task", "gsm8k", "--source", "native,transferred")
    assert [b["ref"] for b in best] == ["gsm8k-llama3-8b:1"]
    for args, code, words in [
        (["transfer", "--to", "mistral-7b"], 2, "give an expert REF or --from"),
        (["transfer", "gsm8k-llama3-8b:1", "--to", "llama3-8b"], 4, "the target is the source"),
        (["transfer", "gsm8k-llama3-8b:1", "--to", "smollm2-135m", "--layer-align", "index"], 4, "equal depth"),
        (["transfer", "gsm8k-llama3-8b:1", "--to", "smollm2-135m", "--rank-align", "energy"], 3, "t2reg model decompose"),
    ]:
        got, _, err = cli(*args)
        assert got == code and words in err, err


def test_list_where(cli, tmp_path):
    path = tmp_path / "l.safetensors"
    cli.ok("new-expert", "--model", "llama3-8b", "--task", "gsm8k", "--out", str(path))
    cli.ok("publish", str(path), "--tag", "reviewed=yes")
    assert [e["ref"] for e in cli.json("list", "--where", "model=llama3-8b,tag.reviewed in (yes,maybe)")] == [
        "gsm8k-llama3-8b:1"]
    assert cli.json("list", "--where", "task=mbpp") == []
    code, _, err = cli("list", "--where", "colour=red")
    assert code == 4 and "unknown filter key" in err
