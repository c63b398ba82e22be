"""Short spellings of backend calls for tests: prompts and (context, continuation) pairs in, typed requests out."""

from __future__ import annotations

from typing import Sequence

from t2reg.adaptation.backends import Backend, GenerationRequest, LoglikelihoodRequest, Sampling


def generate(backend: Backend, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
             variants: Sequence[int] | None = None) -> list[str]:
    sampling = Sampling(max_new_tokens, tuple(stop))
    return backend.generate([GenerationRequest(p, sampling, None if variants is None else variants[i])
                             for i, p in enumerate(prompts)])


def loglikelihood(backend: Backend, pairs: Sequence[tuple[str, str]],
                  variants: Sequence[int] | None = None) -> list[float]:
    return backend.loglikelihood([LoglikelihoodRequest(c, k, None if variants is None else variants[i])
                                  for i, (c, k) in enumerate(pairs)])
