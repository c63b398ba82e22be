"""Base models on disk and by registered name: loading, GGUF conversion, spectra."""

from t2reg.adaptation.models.registered import (
    add_gguf_model,
    decompose_model,
    load_model,
    load_spectra,
    tokenizer_for,
    weights_dir,
)

__all__ = ["add_gguf_model", "decompose_model", "load_model", "load_spectra", "tokenizer_for", "weights_dir"]
