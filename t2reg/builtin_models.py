"""Shape tables for the models t2reg knows by name without downloading anything.

Each entry is the subset of the model's ``config.json`` that the architecture
table needs, so shape checks and index transfers work offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class BuiltinModel:
    alias: str
    hf_id: str
    config: Mapping[str, Any]


def _llama_like(arch: str, model_type: str, **dims: Any) -> dict[str, Any]:
    return {"architectures": [arch], "model_type": model_type, **dims}


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.alias: m
    for m in [
        BuiltinModel(
            "llama3-8b",
            "meta-llama/Meta-Llama-3-8B-Instruct",
            _llama_like("LlamaForCausalLM", "llama", hidden_size=4096, intermediate_size=14336,
                        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                        vocab_size=128256),
        ),
        BuiltinModel(
            "mistral-7b",
            "mistralai/Mistral-7B-Instruct-v0.3",
            _llama_like("MistralForCausalLM", "mistral", hidden_size=4096, intermediate_size=14336,
                        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                        head_dim=128, vocab_size=32768),
        ),
        BuiltinModel(
            "llama3-70b",
            "meta-llama/Meta-Llama-3-70B-Instruct",
            _llama_like("LlamaForCausalLM", "llama", hidden_size=8192, intermediate_size=28672,
                        num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                        vocab_size=128256),
        ),
        BuiltinModel(
            "smollm2-135m",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            _llama_like("LlamaForCausalLM", "llama", hidden_size=576, intermediate_size=1536,
                        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                        vocab_size=49152, tie_word_embeddings=True),
        ),
        BuiltinModel(
            "gemma3-270m",
            "google/gemma-3-270m",
            _llama_like("Gemma3ForCausalLM", "gemma3_text", hidden_size=640, intermediate_size=2048,
                        num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1,
                        head_dim=256, vocab_size=262144),
        ),
    ]
}
