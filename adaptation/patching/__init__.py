"""Putting z into a model: W' written into the weights (:class:`ExpertPatch`), mixtures of
experts (:func:`mix`), and many experts at once in factored form (:class:`FactoredPopulation`)."""

from t2reg.adaptation.patching.mixing import mix
from t2reg.adaptation.patching.patch import ExpertPatch, patched_weight, scaled_spectrum, transposed_names
from t2reg.adaptation.patching.population import FactoredPopulation

__all__ = ["ExpertPatch", "FactoredPopulation", "mix", "patched_weight", "scaled_spectrum", "transposed_names"]
