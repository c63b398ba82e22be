"""The inference backend contract: everything a caller of a backend may use.

A backend is one loaded model. Callers hand it typed requests —
:class:`GenerationRequest` (a prompt and its :class:`Sampling`) and
:class:`LoglikelihoodRequest` (a context and a continuation) — and may swap
named matrices (:meth:`Backend.patched`). Inside :meth:`Backend.population`
each request's ``variant`` says which candidate mixture its row runs with.

What a backend can do beyond that is declared, not discovered:
:attr:`Backend.capabilities` holds :attr:`Capability.POPULATION` when it can
evaluate many mixtures in one batch, :attr:`Capability.GRADIENTS` when it
is a :class:`DifferentiableBackend` (what training needs), and
:attr:`Capability.DECODE` when it hands out a :class:`Decoder`: rows decoded
one token at a time in a cache the backend owns, joining and leaving as their
caller schedules them (what continuous batching in ``t2reg serve`` needs).
``tests/adaptation/backends/test_contract.py`` is what a backend must pass.

Backends are context managers: ``with open_backend(...) as backend:`` closes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from functools import cached_property
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, Mapping, Sequence

import torch

from t2reg.adaptation.patching import patched_weight
from t2reg.architectures import get_architecture, needs_bos
from t2reg.errors import InvalidInputError
from t2reg.expert_file import Expert
from t2reg.spectra import Spectra
from t2reg.enums import Word


class Capability(Word):
    POPULATION = "population"  # population(): each row of a batch with its own mixture
    GRADIENTS = "gradients"  # a DifferentiableBackend: forward passes with weights that carry gradients
    DECODE = "decode"  # decoder(): rows decoded step by step in the backend's cache, scheduled by the caller


@dataclass(frozen=True)
class Sampling:
    """How to continue a prompt: greedy (``temperature`` 0) or sampled, reproducibly given ``seed``, from the
    smallest set of tokens whose probability reaches ``top_p``; ``ignore_eos`` runs to ``max_new_tokens``
    whatever the model says (stop strings still end it)."""

    max_new_tokens: int
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    seed: int | None = None
    top_p: float = 1.0
    ignore_eos: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str  # already rendered (see Backend.render)
    sampling: Sampling
    variant: int | None = None  # inside population(): the candidate this row runs with


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str
    variant: int | None = None


@dataclass(frozen=True)
class GenerationUpdate:
    """Progress of one request of :meth:`Backend.generate_stream`: its whole text so far."""

    index: int  # which request
    text: str  # everything generated so far (cut at a stop string once one appears)
    tokens: int | None = None  # tokens generated so far, where the backend knows
    finish_reason: str | None = None  # "stop" or "length" on a request's last update; None before


class Decoder(ABC):
    """Rows decoded together one token at a time, in a KV cache the backend owns (see Capability.DECODE).

    Rows keep the order they joined in, less those :meth:`keep` drops. Each row decodes as it would alone,
    whatever else shares its batch. ``variants`` name each row's mixture inside :meth:`Backend.population`
    (None outside), given again at every call because a caller may enter a new population between steps.
    """

    @property
    @abstractmethod
    def rows(self) -> int:
        """Rows being decoded."""

    @abstractmethod
    def join(self, prompts: Sequence[Sequence[int]], variants: Sequence[int | None]) -> torch.Tensor:
        """Prefill ``prompts`` (token ids, none empty) and add them as rows after the current ones: float32
        logits of each prompt's next token, (len(prompts), vocabulary). If it raises, the rows are unchanged."""

    @abstractmethod
    def step(self, tokens: Sequence[int], variants: Sequence[int | None]) -> torch.Tensor:
        """Feed every row its next token (one per row, in row order): float32 logits of the token after it,
        (rows, vocabulary)."""

    @abstractmethod
    def keep(self, indices: Sequence[int]) -> None:
        """Keep only these rows, in this order (an empty list ends them all)."""


class Backend(ABC):
    """One loaded model that can generate, score continuations, and take new weights for named matrices."""

    name: ClassVar[str] = "abstract"
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, tokenizer, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise InvalidInputError("{batch_size} must be at least 1", options=["batch_size"])
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # rows per forward pass

    # -- what every backend does ---------------------------------------------------------------

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """One continuation per request, cut at the first of its stop strings."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
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

    @property
    def device(self) -> str:
        """Where the model's tensors live (``cpu``, ``cuda``)."""
        return "cpu"

    @property
    def dtype(self) -> str:
        """What the model's weights and activations are stored in (``float32``, ``bfloat16``): part of the
        protocol of every score it gives."""
        return "float32"

    @property
    def eos_ids(self) -> frozenset[int]:
        """The tokens that end a generation: the tokenizer's (a backend may know more)."""
        eos = self.tokenizer.eos_token_id
        return frozenset() if eos is None else frozenset({eos})

    @property
    def context_length(self) -> int | None:
        """Tokens (prompt and completion) one sequence may hold; None where the backend sets no limit."""
        return None

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def decoder(self) -> Decoder:
        """No rows yet, to decode as the caller schedules them (needs Capability.DECODE)."""
        raise InvalidInputError(f"the {self.name} backend cannot decode step by step for its caller")

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing to release
        """Release what the backend holds (processes, device memory)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- built on the above ----------------------------------------------------------------------

    def split_continuation(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context and continuation, cut where the joint tokenisation agrees; the context
        opens with <bos> when the model family needs one (a chat template may have put it there already)."""
        ctx = self.tokenizer(context, add_special_tokens=False).input_ids
        full = self.tokenizer(context + continuation, add_special_tokens=False).input_ids
        if full[: len(ctx)] == ctx and len(full) > len(ctx):
            cont = full[len(ctx) :]
        else:
            cont = self.tokenizer(continuation, add_special_tokens=False).input_ids
        if self._bos and ctx[: len(self._bos)] != self._bos:
            ctx = self._bos + ctx
        return ctx, cont

    @cached_property
    def _bos(self) -> list[int]:
        """What opens every scored context: <bos> for families that need it, else nothing (looked up once,
        not per option)."""
        bos = self.tokenizer.bos_token_id
        return [bos] if needs_bos(self.architecture) and bos is not None else []

    def render(self, text: str) -> str:
        """A user turn through the tokenizer's chat template when it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return f"{text}\n\n"

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """A conversation (``role``/``content`` dicts) ready for the assistant's turn, through the chat template.

        Without a template, a lone user turn renders as :meth:`render` does (so a
        server's answer equals ``t2reg run``'s); longer conversations become
        ``role: content`` paragraphs ending in ``assistant:``.
        """
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                                      add_generation_prompt=True)
        if len(messages) == 1 and messages[0]["role"] == "user":
            return self.render(messages[0]["content"])
        return "".join(f"{m['role']}: {m['content']}\n\n" for m in messages) + "assistant:"

    def generate_stream(self, requests: Sequence[GenerationRequest],
                        cancelled: Callable[[int], bool] | None = None) -> Iterator[GenerationUpdate]:
        """:meth:`generate` as it happens (for servers). This default runs the whole batch and reports each
        request once, finished; backends that step their own engine report every step and drop request ``i``
        as soon as ``cancelled(i)`` says so."""
        for i, text in enumerate(self.generate(requests)):
            yield GenerationUpdate(i, text, None, None)

    @contextmanager
    def patched(self, spectra: Spectra, z: "Expert | Mapping[str, torch.Tensor]",
                renormalize: str | None = None) -> Iterator["Backend"]:
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
                   renormalize: str | Sequence[str] = "nuclear") -> Iterator["Backend"]:
        """Inside the block, a request's ``variant`` i runs with ``mixtures[i]`` (needs Capability.POPULATION).
        ``renormalize`` is one rule for every mixture or one per mixture (serving's experts keep their own)."""
        raise InvalidInputError(f"the {self.name} backend cannot evaluate a population in one pass")
        yield self  # pragma: no cover - makes this a generator


@dataclass(frozen=True)
class WeightLayout:
    """How a model stores one adapted matrix."""

    dtype: torch.dtype
    transposed: bool  # stored (in, out), like GPT-2's Conv1D


class DifferentiableBackend(Backend):
    """A backend whose forward pass training can differentiate (Capability.GRADIENTS).

    The model's own weights never change here: :meth:`logits` takes
    replacement matrices (built from z, carrying gradients) for one call, so
    the same backend without them is the frozen base policy.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask of ``texts``, left-padded, on the backend's device."""

    @abstractmethod
    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token id rows left-padded into ids and mask, on the backend's device."""

    @abstractmethod
    def logits(self, ids: torch.Tensor, mask: torch.Tensor, keep: int = 0,
               weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Float32 logits of the last ``keep`` positions (0: all). With ``weights``, those matrices stand in
        for the model's own and gradients flow into them; without, it is the base model, without gradients."""

    @abstractmethod
    def continuation_logprobs(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                              weights: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Per-token log-probabilities of each (context ids, continuation ids) pair's continuation; pairs that
        share a context share its forward pass. With ``weights`` those matrices stand in for the model's own
        and gradients flow into them; without, no gradients."""

    @abstractmethod
    def weight_layout(self, names: Sequence[str]) -> dict[str, WeightLayout]:
        """Dtype and orientation of each named matrix, so replacements match the model's own."""
