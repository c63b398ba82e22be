"""The transformers backend: batched generation and scoring with left padding, CPU or CUDA.

It is the one :class:`~t2reg.adaptation.backends.base.DifferentiableBackend`
(training runs here) and the one that evaluates a population in one pass (each
row of a batch with its own mixture, in factored form).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Iterator, Mapping, Sequence

import torch

from t2reg.adaptation.backends.base import (
    Capability,
    DifferentiableBackend,
    GenerationRequest,
    LoglikelihoodRequest,
    Sampling,
    WeightLayout,
)
from t2reg.adaptation.backends.tokens import cut_at_stop, left_pad
from t2reg.adaptation.models.files import load_model, load_tokenizer
from t2reg.adaptation.patching import ExpertPatch, FactoredPopulation, transposed_names
from t2reg.errors import InvalidInputError


class HFBackend(DifferentiableBackend):
    name = "hf"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.POPULATION, Capability.GRADIENTS})

    def __init__(self, model_dir: Path, device: str | None = None, dtype: str = "float32", batch_size: int = 16) -> None:
        super().__init__(load_tokenizer(model_dir), batch_size)
        self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(model_dir, dtype=getattr(torch, dtype), device=self._device)
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
        options = ({"do_sample": True, "temperature": sampling.temperature, "top_k": 0}
                   if sampling.temperature > 0 else {"do_sample": False})
        if sampling.stop:
            options |= {"stop_strings": list(sampling.stop), "tokenizer": self.tokenizer}
        generated = self.model.generate(**enc, max_new_tokens=sampling.max_new_tokens,
                                        pad_token_id=self.tokenizer.pad_token_id, **options)
        return [cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), sampling.stop)
                for row in generated[:, enc.input_ids.shape[1] :]]

    # -- scoring -------------------------------------------------------------------------------

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Requests that share a context (and variant) share its forward pass: the context runs once, its
        last logits score each continuation's first token, and its cached keys and values serve the rest of
        every continuation in one more pass. Multiple-choice questions (one context, several options) cost
        little more than one pass over the question."""
        encoded = [self.split_continuation(r.context, r.continuation) for r in requests]
        groups: dict[tuple[int | None, tuple[int, ...]], list[int]] = {}
        for i, (ctx, _) in enumerate(encoded):
            groups.setdefault((requests[i].variant, tuple(ctx)), []).append(i)
        results = [0.0] * len(requests)
        keys = list(groups)
        for start in range(0, len(keys), self.batch_size):
            self._score_shared_prefix(keys[start : start + self.batch_size], groups, encoded, results)
        return results

    def _score_shared_prefix(self, keys, groups, encoded, results: list[float]) -> None:
        members = [(g, i) for g, key in enumerate(keys) for i in groups[key]]
        longer = [(g, i) for g, i in members if len(encoded[i][1]) > 1]
        self._select([variant for variant, _ in keys])
        ids, mask = self.pad([list(ctx) for _, ctx in keys])
        out = self.model(**self._inputs(ids, mask, keep=1), use_cache=bool(longer))
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        for g, i in members:
            results[i] = float(first[g, encoded[i][1][0]])
        if not longer:
            return
        # Every continuation with more tokens gets its own copy of its context's cache, then all of them
        # run together: inputs are each continuation's tokens but the last, right-padded.
        rows = torch.tensor([g for g, _ in longer], device=self._device)
        cache = out.past_key_values
        cache.batch_select_indices(rows)
        tails = [encoded[i][1][:-1] for _, i in longer]
        width = max(len(t) for t in tails)
        tail_ids = torch.full((len(tails), width), self.tokenizer.pad_token_id, dtype=torch.long)
        tail_mask = torch.zeros((len(tails), width), dtype=torch.long)
        for r, tail in enumerate(tails):
            tail_ids[r, : len(tail)] = torch.tensor(tail)
            tail_mask[r, : len(tail)] = 1
        tail_mask = tail_mask.to(self._device)
        positions = mask.sum(-1)[rows][:, None] + torch.arange(width, device=self._device)[None, :]
        self._select([keys[g][0] for g, _ in longer])
        logits = self.model(input_ids=tail_ids.to(self._device), attention_mask=torch.cat([mask[rows], tail_mask], 1),
                            position_ids=positions, past_key_values=cache, use_cache=True).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for r, (_, i) in enumerate(longer):
            cont = encoded[i][1]
            steps = torch.arange(len(cont) - 1, device=logprobs.device)
            results[i] += float(logprobs[r, steps, torch.tensor(cont[1:], device=logprobs.device)].sum())

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
    def population(self, spectra, mixtures, renormalize="nuclear") -> Iterator["HFBackend"]:
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
