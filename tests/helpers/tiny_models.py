"""Tiny random transformers models, one per supported architecture, saved as real model dirs."""

from __future__ import annotations

from pathlib import Path

import torch

_COMMON = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=128, max_position_embeddings=64)


def configs():
    from transformers import (
        Gemma2Config,
        Gemma3TextConfig,
        GPT2Config,
        LlamaConfig,
        MistralConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    return {
        "LlamaForCausalLM": lambda: LlamaConfig(**_COMMON),
        "MistralForCausalLM": lambda: MistralConfig(**_COMMON),
        "Qwen2ForCausalLM": lambda: Qwen2Config(**_COMMON),
        "Qwen3ForCausalLM": lambda: Qwen3Config(**_COMMON, head_dim=16),
        "Gemma2ForCausalLM": lambda: Gemma2Config(**_COMMON, head_dim=16),
        "Gemma3ForCausalLM": lambda: Gemma3TextConfig(**_COMMON, head_dim=16),
        "Phi3ForCausalLM": lambda: Phi3Config(**_COMMON, pad_token_id=0),
        "GPT2LMHeadModel": lambda: GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=64),
    }


ARCHITECTURES = sorted(["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                        "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM", "GPT2LMHeadModel"])


def build(architecture: str, seed: int = 0):
    """A random model of ``architecture`` in float32 eval mode."""
    import transformers

    config = configs()[architecture]()
    config.architectures = [architecture]
    torch.manual_seed(seed)
    return getattr(transformers, architecture)(config).eval()


def save(architecture: str, path: Path, seed: int = 0) -> Path:
    model = build(architecture, seed)
    model.save_pretrained(path, safe_serialization=True)
    return path


def register_tiny(registry, folder: Path, architecture: str = "LlamaForCausalLM", alias: str = "tiny"):
    """A tiny random model saved under ``folder`` and registered with ``alias``; returns the registry."""
    registry.add_model(str(save(architecture, folder / "tiny-llama")), aliases=[alias])
    return registry
