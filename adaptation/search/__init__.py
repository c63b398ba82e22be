"""Few-shot adaptation: black-box search over mixtures of experts.

``base`` holds the optimizer contract and registry, ``cem`` and ``cma_es`` the
built-in optimizers (registered by importing them here), ``objective`` turns a
member into a score on the shots, ``adapt`` runs the whole job and ``spec``
defines it.
"""

from t2reg.adaptation.search.base import (
    FLOOR,
    Optimizer,
    SearchConfig,
    SearchState,
    check_optimizer,
    get_optimizer,
    optimizer_names,
    register_optimizer,
)

# Registration on import.
from t2reg.adaptation.search import cem  # noqa: E402,F401  isort: skip
from t2reg.adaptation.search import cma_es  # noqa: E402,F401  isort: skip

__all__ = ["FLOOR", "Optimizer", "SearchConfig", "SearchState", "check_optimizer", "get_optimizer",
           "optimizer_names", "register_optimizer"]
