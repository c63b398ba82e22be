"""A real (byte-level BPE) tokenizer trained in code, so tiny models can generate text offline."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Answer the following multiple-choice question. The answer is (A). The answer is (B).",
    "Solve the following math problem step by step. #### 42",
    "Question: what do plants need? (A) light (B) sand (C) noise (D) rocks",
] * 20


def build(vocab_size: int = 400):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    raw = ByteLevelBPETokenizer()
    raw.train_from_iterator(CORPUS, vocab_size=vocab_size, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", bos_token="<|endoftext|>")


def save_model_with_tokenizer(path: Path, architecture: str = "LlamaForCausalLM", seed: int = 0,
                              initializer_range: float | None = None, max_positions: int | None = None,
                              vocab_size: int = 400) -> Path:
    """A tiny random model whose vocabulary matches a trained tokenizer, saved with it.

    A larger ``initializer_range`` gives the MLPs a real say in the output (at the
    default 0.02 the residual stream of a tiny model is almost all embedding).
    """
    import torch
    import transformers

    from tests.helpers.tiny_models import configs

    tokenizer = build(vocab_size)  # another size: other merges, so token boundaries differ between two models
    config = configs()[architecture]()
    config.vocab_size = len(tokenizer)
    config.architectures = [architecture]
    config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    if initializer_range is not None:
        config.initializer_range = initializer_range
    if max_positions is not None:  # a longer context than the tiny default of 64 tokens
        config.max_position_embeddings = max_positions
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(config).eval()
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
