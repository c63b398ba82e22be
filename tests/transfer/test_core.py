"""The transfer math on built-in shape tables and tiny real configs of several families."""

import numpy as np
import pytest

from t2reg.builtin_models import BUILTIN_MODELS
from t2reg.errors import InvalidInputError
from t2reg.transfer import Layout, transfer
from t2reg.transfer import RankOptions
from tests.helpers.tiny_models import build


def _layout(name, config):
    return Layout.from_config(name, config)


def _builtin(alias):
    return _layout(alias, BUILTIN_MODELS[alias].config)


def _tiny(architecture, **overrides):
    model = build(architecture)
    config = {**model.config.to_dict(), **overrides}
    return _layout(f"tiny-{architecture}-{overrides}", config)


def _expert(layout, roles=("gate", "up", "down"), seed=0):
    rng = np.random.default_rng(seed)
    return {s.name: rng.uniform(0.5, 1.5, s.rank).astype(np.float32)
            for s in layout.matrices.values() if s.role in roles}


def test_llama3_8b_to_mistral_7b_index_copies_z_byte_for_byte():
    src, dst = _builtin("llama3-8b"), _builtin("mistral-7b")
    z = _expert(src)
    out, report = transfer(z, src, dst, RankOptions(layer_align="index", rank_align="index"))
    assert out.keys() == z.keys()
    assert all(out[k].tobytes() == z[k].tobytes() for k in z)
    assert report.defaulted_roles == [] and {r.mapped for r in report.roles} == {32}


def test_equal_shapes_copy_under_the_defaults_too():
    src, dst = _builtin("llama3-8b"), _builtin("mistral-7b")
    z = _expert(src, seed=3)
    out, _ = transfer(z, src, dst)
    assert all(out[k].tobytes() == z[k].tobytes() for k in z)


def test_llama_4_layers_to_gemma3_6_layers():
    src = _tiny("LlamaForCausalLM", num_hidden_layers=4)
    dst = _tiny("Gemma3ForCausalLM", num_hidden_layers=6, intermediate_size=128)
    z = _expert(src)
    out, report = transfer(z, src, dst)
    assert len(out) == 18 and [m.source_position for m in report.layers] == [0, 0.6, 1.2, 1.8, 2.4, 3]
    first, last = "model.layers.{}.mlp.up_proj.weight".format(0), "model.layers.{}.mlp.up_proj.weight"
    np.testing.assert_array_equal(out[first], z[first])  # same rank (hidden 64): an exact copy at the endpoints
    np.testing.assert_array_equal(out[last.format(5)], z[last.format(3)])
    mid = out[last.format(1)]
    np.testing.assert_allclose(mid, 0.4 * z[last.format(0)] + 0.6 * z[last.format(1)], rtol=1e-6)
    down = out["model.layers.0.mlp.down_proj.weight"]
    assert down.shape == (64,)  # min(out, in) of the target


def test_llama_to_phi3_fuses_gate_and_up_and_phi3_back_splits():
    llama, phi = _tiny("LlamaForCausalLM"), _tiny("Phi3ForCausalLM")
    z = _expert(llama)
    out, report = transfer(z, llama, phi)
    roles = {r.role: r.how for r in report.roles}
    assert roles == {"gate_up": "fused from gate,up", "down": "direct"}
    fused = out["model.layers.0.mlp.gate_up_proj.weight"]
    assert fused.shape == (64,)  # rank of the (2*96) x 64 fused matrix
    back, back_report = transfer(out, phi, llama)
    assert {r.role: r.how for r in back_report.roles} == {"gate": "split from gate_up", "up": "split from gate_up",
                                                          "down": "direct"}
    assert back["model.layers.1.mlp.gate_proj.weight"].shape == (64,)


def test_attention_experts_split_fused_qkv():
    gpt2, llama = _tiny("GPT2LMHeadModel"), _tiny("LlamaForCausalLM")
    z = _expert(gpt2, roles=("qkv", "o"))
    out, report = transfer(z, gpt2, llama)
    assert {r.role: r.how for r in report.roles} == {
        "q": "split from qkv", "k": "split from qkv", "v": "split from qkv", "o": "direct"}
    assert out["model.layers.0.self_attn.k_proj.weight"].shape == (32,)


def test_roles_absent_in_the_source_default_to_one_and_are_reported():
    gpt2, llama = _tiny("GPT2LMHeadModel"), _tiny("LlamaForCausalLM")
    out, report = transfer(_expert(gpt2, roles=("up", "down")), gpt2, llama)
    assert report.defaulted_roles == ["gate"]
    assert np.all(out["model.layers.1.mlp.gate_proj.weight"] == 1.0)


def test_shuffled_baseline_permutes_each_vector_reproducibly():
    src, dst = _builtin("llama3-8b"), _builtin("mistral-7b")
    z = _expert(src)
    a, report = transfer(z, src, dst, RankOptions(baseline="shuffled", seed=7))
    b, _ = transfer(z, src, dst, RankOptions(baseline="shuffled", seed=7))
    c, _ = transfer(z, src, dst, RankOptions(baseline="shuffled", seed=8))
    name = next(iter(z))
    assert np.array_equal(a[name], b[name]) and not np.array_equal(a[name], c[name])
    assert all(sorted(a[k].tolist()) == sorted(z[k].tolist()) for k in z)
    assert report.seed == 7 and report.options()["baseline"] == "shuffled"


def test_refusals():
    src = _builtin("llama3-8b")
    with pytest.raises(InvalidInputError, match="the target is the source model"):
        transfer(_expert(src), src, _builtin("llama3-8b"))
    with pytest.raises(InvalidInputError, match="equal depth"):
        transfer(_expert(src), src, _builtin("smollm2-135m"), RankOptions(layer_align="index"))
    with pytest.raises(InvalidInputError, match="equal ranks"):
        transfer(_expert(src), src, _builtin("smollm2-135m"), RankOptions(rank_align="index"))
    llama, gpt2 = _tiny("LlamaForCausalLM"), _tiny("GPT2LMHeadModel")
    with pytest.raises(InvalidInputError, match="no role in common"):
        transfer(_expert(llama, roles=("q",)), llama, gpt2)
    with pytest.raises(InvalidInputError, match="needs both models' singular values"):
        transfer(_expert(src), src, _builtin("smollm2-135m"), RankOptions(rank_align="energy"))
