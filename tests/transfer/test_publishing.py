"""Transfers through the registry: lineage, reuse, dry runs, spectra-based options, refusals."""

import numpy as np
import pytest

from t2reg.adaptation import decompose_model
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.expert_file import read_expert
from t2reg.transfer.publishing import transfer_model, transfer_version
from t2reg.transfer import RankOptions
from tests.helpers.experts import make_expert, write
from tests.helpers.tiny_models import save

LLAMA8B = "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.fixture
def llama_expert(registry, tmp_path):
    path = write(make_expert(registry.model_shapes("llama3-8b"), LLAMA8B, task="gsm8k"), tmp_path / "l.safetensors")
    return registry.publish(path, metrics=["gsm8k:accuracy=0.79"])


def test_transfer_publishes_with_lineage_and_is_reused(registry, llama_expert):
    result = transfer_version(registry, llama_expert.ref, "mistral-7b")
    v = result.version
    assert (v.ref, v.source, v.task, v.model) == (
        "gsm8k-llama3-8b--to-mistral-7b:1", "transferred", "gsm8k", "mistralai/Mistral-7B-Instruct-v0.3")
    assert v.renormalize == "nuclear"
    [link] = v.lineage
    assert link.relation == "transferred_from" and link.parent == llama_expert.ref
    assert link.params["layer_align"] == "relative" and link.params["rank_align"] == "quantile"
    original = registry.read_expert(llama_expert.ref).vectors
    moved = registry.read_expert(v.ref).vectors
    assert all(moved[k].tobytes() == original[k].tobytes() for k in original)  # equal shapes: a copy
    again = transfer_version(registry, llama_expert.ref, "mistral-7b")
    assert again.reused and again.version.ref == v.ref
    other = transfer_version(registry, llama_expert.ref, "mistral-7b",
                             RankOptions(layer_align="index", rank_align="index"))
    assert not other.reused and other.version.ref == "gsm8k-llama3-8b--to-mistral-7b:2"


def test_shuffled_baselines_are_their_own_expert_with_the_seed(registry, llama_expert):
    a = transfer_version(registry, llama_expert.ref, "mistral-7b", RankOptions(baseline="shuffled", seed=7)).version
    b = transfer_version(registry, llama_expert.ref, "mistral-7b", RankOptions(baseline="shuffled", seed=8)).version
    assert (a.ref, b.ref) == ("gsm8k-llama3-8b--to-mistral-7b--shuffled:1", "gsm8k-llama3-8b--to-mistral-7b--shuffled:2")
    assert a.source == "transferred-shuffled" and a.tags == {"seed": "7"} and a.lineage[0].params["seed"] == 7
    registry.record(a.ref, ["accuracy=0.6"])
    registry.record(transfer_version(registry, llama_expert.ref, "mistral-7b").version.ref, ["accuracy=0.7"])
    ranked = registry.best("gsm8k", model="mistral-7b", sources=["transferred", "transferred-shuffled"])
    assert [r.source for r in ranked] == ["transferred", "transferred-shuffled"]


def test_dry_run_publishes_nothing(registry, llama_expert):
    result = transfer_version(registry, llama_expert.ref, "smollm2-135m", dry_run=True)
    assert result.version is None and result.to_dict()["published"] is None
    assert len(result.vectors) == 90 and result.report.layers[-1].source_position == 31
    assert registry.list(model="smollm2-135m") == []


def test_transfer_every_expert_of_a_model(registry, llama_expert, tmp_path):
    mbpp = write(make_expert(registry.model_shapes("llama3-8b"), LLAMA8B, task="mbpp", seed=2), tmp_path / "m.safetensors")
    registry.publish(mbpp)
    results = transfer_model(registry, "llama3-8b", "mistral-7b")
    assert sorted(r.version.name for r in results) == ["gsm8k-llama3-8b--to-mistral-7b", "mbpp-llama3-8b--to-mistral-7b"]
    assert [r.version.task for r in transfer_model(registry, "llama3-8b", "mistral-7b", task="mbpp")] == ["mbpp"]
    with pytest.raises(NotFoundError, match="no experts"):
        transfer_model(registry, "gemma3-270m", "mistral-7b")


def test_refusals(registry, llama_expert):
    with pytest.raises(InvalidInputError, match="the target is the source model"):
        transfer_version(registry, llama_expert.ref, "llama3-8b")
    with pytest.raises(NotFoundError, match="needs the spectra of both models; .* has none; decompose it") as info:
        transfer_version(registry, llama_expert.ref, "mistral-7b", RankOptions(rank_align="energy"))
    assert info.value.remedy.command == ("model", "decompose") and len(info.value.remedy.arguments) == 1
    registry.delete(llama_expert.ref)
    with pytest.raises(NotFoundError, match="is deleted"):
        transfer_version(registry, llama_expert.ref, "mistral-7b")


def test_energy_alignment_and_similarity_with_real_spectra(sqlite_registry, tmp_path):
    reg = sqlite_registry
    save("LlamaForCausalLM", tmp_path / "a", seed=1)
    save("MistralForCausalLM", tmp_path / "b", seed=2)
    reg.add_model(str(tmp_path / "a"), aliases=["tiny-a"])
    reg.add_model(str(tmp_path / "b"), aliases=["tiny-b"])
    decompose_model(reg, "tiny-a")
    decompose_model(reg, "tiny-b")
    src = reg.publish(write(make_expert(reg.model_shapes("tiny-a"), "a"), tmp_path / "e.safetensors"))
    result = transfer_version(reg, src.ref, "tiny-b", RankOptions(rank_align="energy"))
    sims = result.report.similarity
    assert len(sims) == 6 and all(0.0 <= s["similarity"] <= 1.0 + 1e-6 for s in sims)
    z = read_expert(reg.blobs.path(result.version.sha256)).vectors
    assert all(np.all(np.isfinite(v)) for v in z.values())
    quantile = transfer_version(reg, src.ref, "tiny-b", dry_run=True).vectors
    assert any(not np.array_equal(z[k], quantile[k]) for k in z)  # different spectra: energy moves values
