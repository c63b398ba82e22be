"""The inference backend interface: generate, score continuations, swap matrices."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import torch

from t2reg.adaptation.patch import patched_weight
from t2reg.architectures import get_architecture
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Expert
from t2reg.spectra import Spectra


class Backend(ABC):
    """One loaded model that can generate, score, and take new weights for named matrices."""

    name = "abstract"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @abstractmethod
    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
                 temperature: float = 0.0, seed: int | None = None) -> list[str]:
        """Continuations, cut at the first stop string: greedy, or sampled when ``temperature`` > 0
        (reproducibly, given ``seed``)."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Summed log-probability of each continuation after its context."""

    @abstractmethod
    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Replace the named matrices (checkpoint names, checkpoint orientation)."""

    @abstractmethod
    def restore(self) -> None:
        """Put back every matrix ``set_weights`` replaced."""

    @property
    @abstractmethod
    def architecture(self) -> str:
        """The transformers class name of the loaded model."""

    def split_continuation(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context and continuation, cut where the joint tokenisation agrees."""
        ctx = self.tokenizer(context, add_special_tokens=False).input_ids
        full = self.tokenizer(context + continuation, add_special_tokens=False).input_ids
        if full[: len(ctx)] == ctx and len(full) > len(ctx):
            return ctx, full[len(ctx) :]
        return ctx, self.tokenizer(continuation, add_special_tokens=False).input_ids

    def render(self, text: str) -> str:
        """A user turn through the tokenizer's chat template when it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return f"{text}\n\n"

    @contextmanager
    def patched(self, spectra: Spectra, z: "Expert | Mapping[str, torch.Tensor]", renormalize: str | None = None) -> Iterator["Backend"]:
        """The backend with W' for the expert's matrices inside the block."""
        if isinstance(z, Expert):
            renormalize, z = renormalize or z.meta.renormalize, z.vectors
        arch = get_architecture(self.architecture)
        weights = {}
        for name, vec in z.items():
            w = patched_weight(spectra[name], torch.as_tensor(vec), renormalize or "nuclear", name)
            weights[name] = w.T.contiguous() if arch.transposed else w
        self.set_weights(weights)
        try:
            yield self
        finally:
            self.restore()

    @contextmanager
    def population(self, spectra: Spectra, mixtures: Sequence[Mapping[str, torch.Tensor]],
                   renormalize: str = "nuclear") -> Iterator["Backend"]:
        """Inside the block, ``generate``/``loglikelihood`` take ``variants=``: row i runs with mixture variants[i]."""
        raise InvalidInputError(f"the {self.name} backend cannot evaluate a population in one pass; "
                                "use --population-eval sequential")
        yield self  # pragma: no cover - makes this a generator

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing to release
        """Release what the backend holds (processes, device memory)."""
