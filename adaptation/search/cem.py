"""The cross-entropy method (the paper's few-shot search): a diagonal Gaussian over alpha.

Sample a population, clamp it to [low, high], score every member, refit mean
and std to the elite fraction, repeat. The random generator's state travels in
the search state, so a resumed search draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from t2reg.adaptation.search.base import Optimizer, SearchState, register_optimizer


@register_optimizer
class CEM(Optimizer):
    name = "cem"

    def _initial(self, dim: int) -> dict[str, Any]:
        return {"rng": np.random.default_rng(self.config.seed).bit_generator.state}

    def _propose(self, state: SearchState) -> tuple[np.ndarray, Any]:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.internal["rng"]
        mean, std = np.asarray(state.mean), np.asarray(state.std)
        noise = rng.standard_normal((self.config.population, len(mean)))
        return np.clip(mean + std * noise, self.config.low, self.config.high), rng.bit_generator.state

    def _refit(self, state, proposed, members, scores, order):
        # At least two elites: the spread of a single member is zero and would end the search at once.
        n_elite = max(2, round(self.config.elite_fraction * self.config.population))
        elite = members[order[:n_elite]]
        return elite.mean(axis=0).tolist(), elite.std(axis=0).tolist(), {"rng": proposed}
