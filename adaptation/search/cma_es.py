"""CMA-ES over alpha through the ``cmaes`` package, resumable from plain data.

``cmaes.CMA`` keeps numpy arrays and a random generator that do not store as
JSON, so the search state keeps what was told instead: the rank of every
member of every generation. Rebuilding the optimizer from its seed and
replaying those generations (ask, then tell the stored ranks) reproduces it
exactly; the replay costs no model evaluations.

CMA-ES minimises one number, and only the order of the numbers matters to it,
so each member is told its lexicographic rank (0 = best): accuracy first, ties
broken by the log-likelihood, exactly like CEM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.adaptation.search.base import Optimizer, SearchState, register_optimizer


@register_optimizer
class CMAES(Optimizer):
    name = "cmaes"

    def _initial(self, dim: int) -> dict[str, Any]:
        if dim < 2:
            raise InvalidInputError("CMA-ES needs at least two coefficients; use cem ({optimizer}) for a one-expert pool",
                                    options=["optimizer"])
        return {"dim": dim, "ranks": []}

    def _propose(self, state: SearchState) -> tuple[np.ndarray, Any]:
        cma = self._replay(state.internal)
        return np.asarray([cma.ask() for _ in range(cma.population_size)]), cma

    def _refit(self, state, cma, members, scores, order):
        ranks = [0] * len(order)
        for position, i in enumerate(order):
            ranks[i] = position
        cma.tell([(x, float(r)) for x, r in zip(members, ranks)])
        internal = {"dim": state.internal["dim"], "ranks": state.internal["ranks"] + [ranks]}
        return cma.mean.tolist(), _std(cma).tolist(), internal

    def done(self, state: SearchState) -> bool:
        return super().done(state) or (state.iteration > 0 and self._replay(state.internal).should_stop())

    def _replay(self, internal: dict[str, Any]):
        from cmaes import CMA

        dim, config = internal["dim"], self.config
        cma = CMA(mean=config.initial_mean(dim), sigma=config.init_std, bounds=np.tile([config.low, config.high], (dim, 1)),
                  seed=config.seed, population_size=config.population)
        for ranks in internal["ranks"]:
            members = [cma.ask() for _ in ranks]
            cma.tell([(x, float(r)) for x, r in zip(members, ranks)])
        return cma


def _std(cma) -> np.ndarray:
    # The per-coordinate spread sigma * sqrt(diag C); cmaes keeps both private.
    return float(cma._sigma) * np.sqrt(np.diag(cma._C))
