"""CLI commands that touch weights, on a tiny real model: success and error paths."""

import pytest
import torch

from tests.cli.test_commands import CLI
from tests.helpers.tiny_models import save
from tests.t2reg.test_reference_import import Payload


@pytest.fixture
def cli(tmp_path, capsys):
    save("LlamaForCausalLM", tmp_path / "tiny-llama")
    runner = CLI(tmp_path / "home", capsys)
    runner.ok("model", "add", str(tmp_path / "tiny-llama"), "--alias", "tiny")
    return runner


def test_decompose_import_and_export(cli, tmp_path):
    assert "6 matrices decomposed" in cli.ok("model", "decompose", "tiny")
    torch.save({f"learnable_params_module_list.{i}": torch.zeros(64, dtype=torch.bfloat16) for i in range(6)},
               tmp_path / "policy_params.pt")
    assert cli.ok("import-reference", str(tmp_path / "policy_params.pt"), "--model", "tiny", "--task", "arc-easy").strip() == "arc-easy-tiny:1"
    assert cli.json("show", "arc-easy-tiny:1")["source"] == "imported"
    cli.ok("export", "arc-easy-tiny:1", "--out", str(tmp_path / "merged"))
    assert (tmp_path / "merged" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["model", "decompose", "llama3-8b"], 3, "has no weights registered"),
        (["model", "decompose", "nope"], 3, "unknown model 'nope'"),
        (["model", "add", "x", "--gguf", "/nonexistent.gguf"], 2, "does not exist"),
        (["export", "gsm8k-tiny:1", "--out", "OUT"], 3, "t2reg model decompose"),
        (["import-reference", "EVIL", "--model", "tiny", "--task", "gsm8k"], 4, "needs full unpickling"),
        (["import-reference", "/nonexistent.pt", "--model", "tiny", "--task", "gsm8k"], 4, "no such file"),
    ],
)
def test_errors(cli, tmp_path, args, code, words):
    torch.save({"learnable_params_module_list.0": Payload()}, tmp_path / "evil.pt")
    cli.ok("new-expert", "--model", "tiny", "--task", "gsm8k", "--out", str(tmp_path / "e.safetensors"))
    cli.ok("publish", str(tmp_path / "e.safetensors"))
    args = [str(tmp_path / "evil.pt") if a == "EVIL" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    got, _, err = cli(*args)
    assert got == code, err
    assert words in err and err.count("\n") == 1
