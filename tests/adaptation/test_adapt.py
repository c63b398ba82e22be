"""Few-shot adaptation end to end on tiny real models: a mixed pool (one expert from
another architecture, transferred first), CEM on the shots, held-out report, publish."""

import pytest

from t2reg.adaptation.adapt import adapt
from t2reg.adaptation.cem import CEMConfig
from t2reg.errors import InvalidInputError, NotFoundError
from tests.adaptation.test_tasks import DATA
from tests.cli.test_commands import CLI
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture
def pool_registry(tmp_path, capsys):
    save_model_with_tokenizer(tmp_path / "tiny", "LlamaForCausalLM", seed=0)
    save_model_with_tokenizer(tmp_path / "other", "MistralForCausalLM", seed=1)
    cli = CLI(tmp_path / "home", capsys)
    cli.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    cli.ok("model", "add", str(tmp_path / "other"), "--alias", "other")
    cli.ok("model", "decompose", "tiny")
    for model, task, seed in (("tiny", "gsm8k", 1), ("tiny", "mbpp", 2), ("other", "arc-easy", 3)):
        path = tmp_path / f"{model}-{task}.safetensors"
        cli.ok("new-expert", "--model", model, "--task", task, "--noise", "0.2", "--seed", str(seed), "--out", str(path))
        cli.ok("publish", str(path))
    return cli


def test_adapt_mixes_native_and_transferred_experts(pool_registry):
    from t2reg.cli.context import AppContext

    registry = AppContext(home=pool_registry.base[1]).registry()
    result = adapt(registry, "tiny", "arc-easy", ["model=tiny", "model=other"], shots=4, heldout=6,
                   config=CEMConfig(population=4, elite_fraction=0.5, iterations=2, seed=0), data_dir=str(DATA))
    v = result.version
    assert v.ref == "arc-easy-tiny-adapted:1" and v.source == "adapted" and v.tags == {"shots": "4"}
    assert sorted(result.components) == ["arc-easy-other--to-tiny:1", "gsm8k-tiny:1", "mbpp-tiny:1"]
    assert sorted(link.parent for link in v.lineage) == sorted(result.components)
    assert all(link.relation == "mixture_component" for link in v.lineage)
    assert len(result.alpha) == 3 and all(0 <= a <= 1 for a in result.alpha)
    assert [(e.split, e.n, e.value) for e in v.evaluations] == [("test", 6, result.heldout.score)]
    assert registry.model_evaluations("tiny", "arc-easy")[-1].n == 6
    assert result.state.iteration == 2 and len(result.state.history) == 2


def test_adapt_per_matrix_through_the_cli(pool_registry):
    out = pool_registry.json("adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "model=tiny", "--shots", "3",
                             "--heldout", "4", "--population", "3", "--iterations", "1", "--per-matrix",
                             "--data-dir", str(DATA))
    assert out["published"] == "arc-easy-tiny-adapted:1"
    assert len(out["alpha"]) == 2 and len(out["alpha"][0]) == 6  # 2 experts x 6 MLP matrices
    assert out["heldout"]["n"] == 4 and out["base"]["n"] == 4


def test_empty_pool_filters_are_named(pool_registry):
    from t2reg.cli.context import AppContext

    registry = AppContext(home=pool_registry.base[1]).registry()
    with pytest.raises(NotFoundError, match="pool filter 'task=math' matched no live expert"):
        adapt(registry, "tiny", "arc-easy", ["task=math"], data_dir=str(DATA))
    with pytest.raises(InvalidInputError, match="asked for 5000 shots"):
        adapt(registry, "tiny", "arc-easy", ["model=tiny"], shots=5000, data_dir=str(DATA))
