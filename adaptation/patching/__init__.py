"""Putting z into a model: W' written into the weights (:class:`ExpertPatch`), mixtures of
experts (:func:`mix`), and many experts at once in factored form (:class:`FactoredPopulation`)."""

from t2reg.adaptation.patching.mixing import MIX_SPACES, STRENGTH_MAX, mix, mix_logits, strengthen
from t2reg.adaptation.patching.patch import ExpertPatch, patched_weight, scaled_spectrum, transposed_names
from t2reg.adaptation.patching.population import FactoredPopulation

__all__ = ["MIX_SPACES", "STRENGTH_MAX", "ExpertPatch", "FactoredPopulation", "mix", "mix_logits", "patched_weight",
           "scaled_spectrum", "strengthen", "transposed_names"]
