import pytest

from t2reg.architectures import get_architecture, matrix_specs, register_architecture, supported_architectures
from t2reg.builtin_models import BUILTIN_MODELS
from t2reg.errors import UnsupportedArchitectureError


def test_llama3_8b_mlp_matches_the_papers_parameter_count():
    # Table 4 of the paper: SVF on Llama-3-8B's MLP matrices is 0.39 M parameters.
    specs = matrix_specs(BUILTIN_MODELS["llama3-8b"].config, "mlp")
    assert len(specs) == 96
    assert sum(s.rank for s in specs) == 393_216
    # Its 0.16 M for attention is q and v alone (the reference code's choice).
    attn = matrix_specs(BUILTIN_MODELS["llama3-8b"].config, "attn")
    assert round(sum(s.rank for s in attn if s.role in ("q", "v")) / 1e6, 2) == 0.16


def test_mistral_and_llama3_share_shapes_so_index_transfer_copies():
    llama = [(s.layer, s.role, s.out_features, s.in_features) for s in matrix_specs(BUILTIN_MODELS["llama3-8b"].config)]
    mistral = [(s.layer, s.role, s.out_features, s.in_features) for s in matrix_specs(BUILTIN_MODELS["mistral-7b"].config)]
    assert llama == mistral


def test_locate_inverts_the_templates():
    arch = get_architecture("Phi3ForCausalLM")
    assert arch.locate("model.layers.7.self_attn.qkv_proj.weight") == (7, "qkv")
    assert arch.locate("model.layers.7.mlp.gate_up_proj.weight") == (7, "gate_up")
    assert arch.locate("model.embed_tokens.weight") is None


def test_gpt2_conv1d_is_marked_transposed():
    specs = matrix_specs({"architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 16, "n_head": 2}, "mlp")
    assert {(s.role, s.out_features, s.in_features, s.transposed) for s in specs} == {
        ("up", 64, 16, True), ("down", 16, 64, True)}


def test_unknown_architecture_names_itself_and_lists_supported():
    with pytest.raises(UnsupportedArchitectureError) as info:
        get_architecture("MambaForCausalLM")
    assert "MambaForCausalLM" in str(info.value)
    assert "LlamaForCausalLM" in str(info.value)
    assert set(supported_architectures()) >= {
        "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
        "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM", "GPT2LMHeadModel"}


def test_register_architecture_adds_a_family():
    base = get_architecture("LlamaForCausalLM")
    register_architecture(type(base)("custom", ("CustomForCausalLM",), base.templates, base.shapes))
    config = {**BUILTIN_MODELS["smollm2-135m"].config, "architectures": ["CustomForCausalLM"]}
    assert len(matrix_specs(config)) == 210


def test_config_without_architectures_falls_back_to_model_type():
    config = {k: v for k, v in BUILTIN_MODELS["smollm2-135m"].config.items() if k != "architectures"}
    assert len(matrix_specs(config, "mlp")) == 90
