"""Applying experts to live models: spectra, patches, mixtures, export."""

from t2reg.adaptation.models import add_gguf_model, decompose_model, load_model, load_spectra
from t2reg.adaptation.patch import ExpertPatch, mix, patched_weight

__all__ = ["ExpertPatch", "add_gguf_model", "decompose_model", "load_model", "load_spectra", "mix", "patched_weight"]
