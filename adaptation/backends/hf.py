"""The transformers backend: batched generation and scoring with left padding, CPU or CUDA.

It is the one :class:`~t2reg.adaptation.backends.base.DifferentiableBackend`
(training runs here), the one that evaluates a population in one pass (each
row of a batch with its own mixture, in factored form), and the one that
decodes step by step for a caller that schedules the rows (``t2reg serve``;
the cache lives in :mod:`~t2reg.adaptation.backends.hf_decoding`).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ClassVar, Iterable, Iterator, Mapping, Sequence, TypeVar

import torch

from t2reg.adaptation.backends.base import (
    Capability,
    DifferentiableBackend,
    GenerationRequest,
    LoglikelihoodRequest,
    Sampling,
    WeightLayout,
)
from t2reg.adaptation.backends.hf_decoding import HFDecoder
from t2reg.adaptation.backends.tokens import cut_at_stop, left_pad, right_pad
from t2reg.adaptation.models.files import load_model, load_tokenizer
from t2reg.adaptation.patching import ExpertPatch, FactoredPopulation, transposed_names
from t2reg.errors import InvalidInputError

K = TypeVar("K")

class HFBackend(DifferentiableBackend):
    name = "hf"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.POPULATION, Capability.GRADIENTS, Capability.DECODE})

    def __init__(self, model_dir: Path, device: str | None = None, dtype: str = "float32", batch_size: int = 16) -> None:
        super().__init__(load_tokenizer(model_dir), batch_size)
        self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(model_dir, dtype=getattr(torch, dtype), device=self._device)
        self._dtype = dtype
        if dtype != "float32":
            _float32_head(self.model)
        self.model.requires_grad_(False)  # gradients flow only into replacement weights (see logits)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._saved: dict[str, torch.Tensor] = {}
        self._factored: FactoredPopulation | None = None

    @property
    def architecture(self) -> str:
        return self.model.config.architectures[0]

    @property
    def device(self) -> str:
        return self._device

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def eos_ids(self) -> frozenset[int]:
        """The generation config's end tokens (one or several: chat models end turns their own way) and the
        tokenizer's."""
        found = getattr(self.model.generation_config, "eos_token_id", None)
        ids = set([found] if isinstance(found, int) else list(found or []))
        return frozenset(ids) | super().eos_ids

    @property
    def context_length(self) -> int | None:
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        return int(limit) if limit else None

    # -- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        outputs: list[str] = [""] * len(requests)
        groups: dict[Sampling, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.sampling, []).append(i)
        for sampling, indices in groups.items():
            if sampling.temperature > 0 and sampling.seed is not None:
                torch.manual_seed(sampling.seed)  # transformers samples from the global generator
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                texts = self._generate_batch([requests[i] for i in batch], sampling)
                for i, text in zip(batch, texts):
                    outputs[i] = text
        return outputs

    def _generate_batch(self, batch: list[GenerationRequest], sampling: Sampling) -> list[str]:
        self.tokenizer.padding_side = "left"
        self._select([r.variant for r in batch])
        enc = self.tokenizer([r.prompt for r in batch], return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self._device)
        options = ({"do_sample": True, "temperature": sampling.temperature, "top_k": 0, "top_p": sampling.top_p}
                   if sampling.temperature > 0 else {"do_sample": False})
        if sampling.ignore_eos:  # the end tokens are masked out until the budget is spent
            options["min_new_tokens"] = sampling.max_new_tokens
        if sampling.stop:
            options |= {"stop_strings": list(sampling.stop), "tokenizer": self.tokenizer}
        generated = self.model.generate(**enc, max_new_tokens=sampling.max_new_tokens,
                                        pad_token_id=self.tokenizer.pad_token_id, **options)
        return [cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), sampling.stop)
                for row in generated[:, enc.input_ids.shape[1] :]]

    # -- scoring -------------------------------------------------------------------------------

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Requests that share a context (and variant) share its forward pass (see :meth:`_shared_prefix`):
        multiple-choice questions (one context, several options) cost little more than one pass over the
        question."""
        encoded = [self.split_continuation(r.context, r.continuation) for r in requests]
        groups: dict[tuple[int | None, tuple[int, ...]], list[int]] = {}
        for i, (ctx, _) in enumerate(encoded):
            groups.setdefault((requests[i].variant, tuple(ctx)), []).append(i)
        results = [0.0] * len(requests)
        keys = _longest_first(groups, lambda key: key[1])
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            scored = self._shared_prefix([list(ctx) for _, ctx in batch],
                                         [[encoded[i][1] for i in groups[key]] for key in batch],
                                         variants=[variant for variant, _ in batch])
            for key, logprobs in zip(batch, scored):
                for i, tokens in zip(groups[key], logprobs):
                    results[i] = float(tokens.sum())
        return results

    def _shared_prefix(self, contexts: list[list[int]], continuations: list[list[list[int]]],
                       variants: list[int | None] | None = None,
                       weights: Mapping[str, torch.Tensor] | None = None) -> list[list[torch.Tensor]]:
        """Each context's continuations' per-token log-probabilities, the context run once.

        The contexts' pass gives each continuation's first token (from the last logits) and a cache of
        keys and values; the continuations with more tokens run on copies of their contexts' caches
        (inputs: each continuation's tokens but the last, right-padded), longest first, ``batch_size``
        rows per pass, so short options are not padded to the longest one of the batch. With ``weights``
        every pass uses those matrices and gradients flow through them.
        """
        forward = self._forward_with(weights)
        if variants is not None:
            self._select(variants)
        ids, mask = self.pad(contexts)
        longer = [(g, j) for g, conts in enumerate(continuations) for j, cont in enumerate(conts) if len(cont) > 1]
        out = forward(**self._inputs(ids, mask, keep=1), use_cache=bool(longer))
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        result = [[first[g, cont[0]].reshape(1) for cont in conts] for g, conts in enumerate(continuations)]
        longer.sort(key=lambda gj: -len(continuations[gj[0]][gj[1]]))
        for start in range(0, len(longer), self.batch_size):
            part = longer[start : start + self.batch_size]
            rows = torch.tensor([g for g, _ in part], device=self._device)
            tail_ids, tail_mask = right_pad([continuations[g][j][:-1] for g, j in part], self.tokenizer.pad_token_id)
            positions = mask.sum(-1)[rows][:, None] + torch.arange(tail_ids.shape[1], device=self._device)[None, :]
            if variants is not None:
                self._select([variants[g] for g, _ in part])
            logits = forward(input_ids=tail_ids.to(self._device),
                             attention_mask=torch.cat([mask[rows], tail_mask.to(self._device)], 1),
                             position_ids=positions, past_key_values=_rows_of(out.past_key_values, rows),
                             use_cache=True).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for r, (g, j) in enumerate(part):
                cont = continuations[g][j]
                steps = torch.arange(len(cont) - 1, device=logprobs.device)
                picked = logprobs[r, steps, torch.tensor(cont[1:], device=logprobs.device)]
                result[g][j] = torch.cat([result[g][j], picked])
        return result

    def _forward_with(self, weights: Mapping[str, torch.Tensor] | None):
        if weights is None:
            return self.model
        replaced = dict(weights)
        return lambda **inputs: torch.func.functional_call(self.model, replaced, (), inputs)

    # -- weights -------------------------------------------------------------------------------

    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, tensor in weights.items():
                param = self.model.get_parameter(name)
                if name not in self._saved:
                    self._saved[name] = param.detach().clone()
                param.copy_(tensor.to(device=param.device, dtype=param.dtype))

    def restore(self) -> None:
        with torch.no_grad():
            for name, original in self._saved.items():
                self.model.get_parameter(name).copy_(original)
        self._saved.clear()

    @contextmanager
    def patched(self, spectra, z, renormalize=None) -> Iterator["HFBackend"]:
        # In place, without a temporary W' per matrix.
        with ExpertPatch(self.model, spectra, z, renormalize):
            yield self

    @contextmanager
    def population(self, spectra, mixtures, renormalize: str | Sequence[str] = "nuclear") -> Iterator["HFBackend"]:
        with FactoredPopulation(self.model, spectra, mixtures, renormalize) as factored:
            self._factored = factored
            try:
                yield self
            finally:
                self._factored = None

    def _select(self, variants: Sequence[int | None]) -> None:
        """Tell the population hooks which candidate each row of the next batch belongs to."""
        inside = self._factored is not None
        if any((v is None) == inside for v in variants):
            raise InvalidInputError("inside population() every request names its variant; outside, none does")
        if inside:
            self._factored.rows = torch.tensor(list(variants), dtype=torch.long)

    # -- what serving needs: a decode loop the caller schedules -----------------------------------------

    def decoder(self) -> HFDecoder:
        return HFDecoder(self._forward_cached, self.tokenizer.pad_token_id)

    @torch.no_grad()
    def _forward_cached(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache,
                        variants: Sequence[int | None]) -> torch.Tensor:
        """Float32 logits of each row's last position after feeding ``ids`` on top of ``cache``.

        ``cache`` (a transformers ``DynamicCache``) grows in place; ``mask`` covers
        the cached and the new columns, left-padded; ``positions`` are the new
        tokens' positions (real tokens only). Inside :meth:`population` each row
        names its mixture in ``variants``, as requests do.
        """
        self._select(variants)
        out = self.model(input_ids=ids.to(self._device), attention_mask=mask.to(self._device),
                         position_ids=positions.to(self._device), past_key_values=cache, use_cache=True,
                         logits_to_keep=1)
        return out.logits[:, -1, :].float()

    # -- what training needs -------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pad([self.tokenizer(t, add_special_tokens=False).input_ids for t in texts])

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = left_pad(rows, self.tokenizer.pad_token_id)
        return ids.to(self._device), mask.to(self._device)

    def logits(self, ids: torch.Tensor, mask: torch.Tensor, keep: int = 0,
               weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        if weights is None:
            with torch.no_grad():
                return self._forward(ids, mask, keep).float()
        inputs = self._inputs(ids, mask, keep)
        return torch.func.functional_call(self.model, dict(weights), (), inputs).logits.float()

    def continuation_logprobs(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                              weights: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, _) in enumerate(pairs):
            groups.setdefault(tuple(ctx), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(pairs)
        keys = _longest_first(groups, lambda key: key)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            scored = self._shared_prefix([list(ctx) for ctx in batch], [[list(pairs[i][1]) for i in groups[key]]
                                                                       for key in batch], weights=weights)
            for key, logprobs in zip(batch, scored):
                for i, tokens in zip(groups[key], logprobs):
                    out[i] = tokens
        return out

    def weight_layout(self, names: Sequence[str]) -> dict[str, WeightLayout]:
        transposed = transposed_names(self.model)
        return {n: WeightLayout(self.model.get_parameter(n).dtype, n in transposed) for n in names}

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
        return self.model(**self._inputs(ids, mask, keep)).logits

    def _inputs(self, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> dict:
        # Positions count real tokens only, so a left-padded row scores as it would alone
        # (models with absolute position embeddings, e.g. GPT-2, depend on it).
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids.to(self._device), "attention_mask": mask.to(self._device),
                "position_ids": positions.to(self._device), "logits_to_keep": keep}


def _longest_first(keys: Iterable[K], context: Callable[[K], Sequence[int]]) -> list[K]:
    """Group keys by their context's length, longest first: batches of similar lengths carry little padding
    (ARC-Easy's contexts in sample order, padded to each batch's longest, cost 2.4x their tokens; sorted
    within a call of 128 questions, 1.3x: bench/padding.py). Ties keep their order, so the batches are a
    function of the requests alone."""
    return sorted(keys, key=lambda key: -len(context(key)))


def _rows_of(cache, rows: torch.Tensor):
    """A cache holding only ``rows`` of ``cache`` (which stays as it was, for the next rows)."""
    part = copy.copy(cache)
    part.layers = [copy.copy(layer) for layer in cache.layers]
    part.batch_select_indices(rows)
    return part


class _Float32Head(torch.nn.Linear):
    """The output projection in float32 on a model that computes in a narrower dtype: logits, and the
    log-softmax over them, keep float32's precision (bfloat16 logits of ~20 are only good to ~0.06)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__(weight.shape[1], weight.shape[0], bias=False, device="meta")
        self.weight = torch.nn.Parameter(weight.detach().float(), requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(hidden.float(), self.weight)


def _float32_head(model) -> None:
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        raise InvalidInputError(f"{type(model).__name__}: no plain output projection to keep in float32; "
                                "score it in float32 ({dtype} float32)", options=["dtype"])
    model.set_output_embeddings(_Float32Head(head.weight))
