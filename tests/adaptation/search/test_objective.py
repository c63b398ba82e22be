"""Turning search members into applicable mixtures, at the scale of a real model's matrix count."""

from pathlib import Path

import numpy as np
import torch

from t2reg.adaptation.search.objective import Candidate, MixtureScorer
from t2reg.adaptation.search import SearchConfig, get_optimizer
from t2reg.adaptation.tasks import get_task
from t2reg.spectra import Factors, Spectra

K, M, RANK = 3, 210, 4  # SmolLM2-135M has 30 layers x 7 matrices


def _scorer() -> MixtureScorer:
    generator = torch.Generator().manual_seed(0)
    names = [f"layer{m:03d}" for m in range(M)]
    factors = {n: Factors(torch.eye(RANK), torch.rand(RANK, generator=generator) + 0.1, torch.eye(RANK)) for n in names}
    experts = [{n: (0.5 + torch.rand(RANK, generator=generator)).numpy() for n in names} for _ in range(K)]
    return MixtureScorer(None, get_task("arc-easy"), Spectra(Path("."), {}, factors), experts, "nuclear", (K, M))


def test_a_per_matrix_search_starts_from_mostly_usable_members():
    scorer = _scorer()
    optimizer = get_optimizer("cem", SearchConfig(population=32, start=1.0 / K, seed=0))
    state = optimizer.start(K * M)
    assert state.mean == [1.0 / K] * (K * M)  # each column starts as the uniform mixture
    members, _ = optimizer._propose(state)
    candidates = [scorer.candidate(m) for m in members]
    assert sum(not c.alpha.any(axis=0).all() for c in candidates) > 0  # some column is clamped to zero...
    assert all(scorer.mixture(c) is not None for c in candidates)  # ...and that matrix keeps its base weights


def test_an_all_zero_column_leaves_its_matrix_at_the_base_weights_and_others_mix():
    scorer = _scorer()
    alpha = np.zeros((K, M))
    alpha[1, 1:] = 1.0  # column 0: no expert; the rest: expert 1 alone
    mixed = scorer.mixture(Candidate(alpha))
    names = sorted(mixed)
    assert torch.equal(mixed[names[0]], torch.ones(RANK))
    assert torch.allclose(mixed[names[5]], torch.as_tensor(scorer.vectors[1][names[5]]))


def test_per_vector_all_zero_is_still_refused_under_nuclear_renormalisation():
    scorer = _scorer()
    scorer.shape = (K,)
    assert scorer.mixture(Candidate(np.zeros(K))) is None
