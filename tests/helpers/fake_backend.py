"""The smallest backend that keeps the contract, written for the contract tests: what a new backend must do.

Its "model" is a bag of embeddings through one named matrix: the next token's logits are
``O · tanh(W · mean(E[context]))``. It generates (greedy, or sampled from a seeded generator within
``top_p``; ``ignore_eos``; stop strings), scores continuations, swaps its matrix (so ``patched`` works
through the base class), and decodes step by step for a caller that schedules rows
(Capability.DECODE), keeping each row's tokens as its "cache" and recomputing from them. It declares
neither POPULATION nor GRADIENTS, so the contract's checks of those refusals run on it too.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

import torch

from t2reg.adaptation.backends import (
    Backend,
    Capability,
    Decoder,
    GenerationRequest,
    LoglikelihoodRequest,
    Sampling,
)
from t2reg.adaptation.backends.tokens import cut_at_stop
from t2reg.errors import InvalidInputError

MATRIX = "model.layers.0.mlp.down_proj.weight"  # its one adaptable matrix, named as a Llama checkpoint names one
WIDTH = 24


class FakeBackend(Backend):
    name = "fake"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DECODE})

    def __init__(self, tokenizer, seed: int = 0, batch_size: int = 16) -> None:
        super().__init__(tokenizer, batch_size)
        g = torch.Generator().manual_seed(seed)
        vocab = len(tokenizer)
        self.embedding = torch.randn(vocab, WIDTH, generator=g)
        self.output = torch.randn(vocab, WIDTH, generator=g) * 3
        self.weights = {MATRIX: torch.randn(WIDTH, WIDTH, generator=g) / WIDTH**0.5}
        self._saved: dict[str, torch.Tensor] = {}

    @property
    def architecture(self) -> str:
        return "LlamaForCausalLM"  # its matrix is stored (out, in), as Llama's are

    def next_logits(self, ids: Sequence[int]) -> torch.Tensor:
        """Float32 logits of the token after ``ids``."""
        hidden = self.embedding[list(ids)].mean(0)
        return self.output @ torch.tanh(self.weights[MATRIX] @ hidden)

    # -- what every backend does ------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [self._generate(request) for request in _without_variants(requests)]

    def _generate(self, request: GenerationRequest) -> str:
        sampling = request.sampling
        generator = torch.Generator()
        if sampling.seed is not None:
            generator.manual_seed(sampling.seed)
        ids = self.tokenizer(request.prompt, add_special_tokens=False).input_ids
        new: list[int] = []
        while len(new) < sampling.max_new_tokens:
            logits = self.next_logits(ids + new)
            if sampling.ignore_eos:
                logits[list(self.eos_ids)] = float("-inf")
            token = _choose(logits, sampling, generator)
            if token in self.eos_ids:
                break
            new.append(token)
            if any(s in self.tokenizer.decode(new) for s in sampling.stop if s):
                break
        return cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), sampling.stop)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        out = []
        for request in _without_variants(requests):
            context, continuation = self.split_continuation(request.context, request.continuation)
            total = 0.0
            for i, token in enumerate(continuation):
                total += float(torch.log_softmax(self.next_logits(context + continuation[:i]), -1)[token])
            out.append(total)
        return out

    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        for name, tensor in weights.items():
            if name not in self.weights:
                raise InvalidInputError(f"the fake model has no matrix {name!r}")
            self._saved.setdefault(name, self.weights[name])
            self.weights[name] = tensor.detach().float().clone()

    def restore(self) -> None:
        self.weights.update(self._saved)
        self._saved.clear()

    # -- Capability.DECODE ------------------------------------------------------------------------

    def decoder(self) -> Decoder:
        return _FakeDecoder(self)


class _FakeDecoder(Decoder):
    """Rows as token lists; every step recomputes each row from its tokens (no real cache needed)."""

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self._rows: list[list[int]] = []

    @property
    def rows(self) -> int:
        return len(self._rows)

    def join(self, prompts: Sequence[Sequence[int]], variants: Sequence[int | None]) -> torch.Tensor:
        _no_population(variants)
        logits = torch.stack([self.backend.next_logits(p) for p in prompts])  # before any row is added
        self._rows.extend(list(p) for p in prompts)
        return logits

    def step(self, tokens: Sequence[int], variants: Sequence[int | None]) -> torch.Tensor:
        _no_population(variants)
        if len(tokens) != len(self._rows):
            raise InvalidInputError(f"{len(tokens)} tokens for {len(self._rows)} rows")
        for row, token in zip(self._rows, tokens):
            row.append(token)
        return torch.stack([self.backend.next_logits(row) for row in self._rows])

    def keep(self, indices: Sequence[int]) -> None:
        self._rows = [self._rows[i] for i in indices]


def _choose(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    if sampling.temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / sampling.temperature, -1)
    ordered, order = probs.sort(descending=True)
    dropped = ordered.cumsum(0) - ordered >= sampling.top_p  # beyond the nucleus; the most likely token stays
    dropped[0] = False
    ordered[dropped] = 0.0
    return int(order[torch.multinomial(ordered / ordered.sum(), 1, generator=generator)])


def _without_variants(requests):
    _no_population([r.variant for r in requests])
    return requests


def _no_population(variants: Sequence[int | None]) -> None:
    if any(v is not None for v in variants):
        raise InvalidInputError("the fake backend has no population: no request names a variant")
