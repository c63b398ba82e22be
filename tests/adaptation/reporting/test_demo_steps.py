"""The demo's choices that the end-to-end run cannot show on a fresh registry: which experts
join the adaptation pool."""

from t2reg.adaptation.reporting.demo import DemoPlan, adaptation_pool
from t2reg.cli.context import AppContext
from tests.cli.test_commands import CLI
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

PLAN = DemoPlan(name="test", train={}, adapt={}, transfer_heldout=4, target="tiny", adapt_task="arc-challenge")


def _registry(tmp_path, capsys):
    save_model_with_tokenizer(tmp_path / "tiny", "LlamaForCausalLM", seed=0)
    cli = CLI(tmp_path / "home", capsys)
    cli.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    for task in ("gsm8k", "arc-challenge"):
        path = tmp_path / f"{task}.safetensors"
        cli.ok("new-expert", "--model", "tiny", "--task", task, "--seed", "1", "--out", str(path))
        cli.ok("publish", str(path), "--name", f"native-{task}")
    return AppContext(home=cli.base[1]).registry()


def test_the_pool_adds_the_targets_own_experts_except_those_for_the_adaptation_task(tmp_path, capsys):
    registry = _registry(tmp_path, capsys)
    assert adaptation_pool(registry, PLAN, []) == ["native-gsm8k:1"]
    transferred = registry.get("native-arc-challenge:1")  # stands in for a transfer: only its ref matters
    assert adaptation_pool(registry, PLAN, [transferred]) == ["native-gsm8k:1", "native-arc-challenge:1"]
