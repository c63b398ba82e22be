"""The transformers backend: batched greedy generation with left padding, CPU or CUDA."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch

from t2reg.adaptation.backends.base import Backend
from t2reg.adaptation.patch import ExpertPatch
from t2reg.adaptation.population import FactoredPopulation
from t2reg.adaptation.weights import load_model, load_tokenizer
from t2reg.errors import InvalidInputError


class HFBackend(Backend):
    name = "hf"

    def __init__(self, model_dir: Path, device: str | None = None, dtype: str = "float32", batch_size: int = 16) -> None:
        super().__init__(load_tokenizer(model_dir))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(model_dir, dtype=getattr(torch, dtype), device=self.device)
        self.batch_size = batch_size
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._saved: dict[str, torch.Tensor] = {}
        self._factored: FactoredPopulation | None = None

    @property
    def architecture(self) -> str:
        return self.model.config.architectures[0]

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
                 temperature: float = 0.0, seed: int | None = None, variants: Sequence[int] | None = None) -> list[str]:
        self.tokenizer.padding_side = "left"
        sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
        if temperature > 0 and seed is not None:
            torch.manual_seed(seed)  # transformers samples from the global generator
        outputs = []
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start : start + self.batch_size])
            self._select(variants, range(start, start + len(batch)))
            enc = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            extra = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
            generated = self.model.generate(
                **enc, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling, **extra
            )
            for row in generated[:, enc.input_ids.shape[1] :]:
                outputs.append(_cut(self.tokenizer.decode(row, skip_special_tokens=True), stop))
        return outputs

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[tuple[str, str]], variants: Sequence[int] | None = None) -> list[float]:
        encoded = [self.split_continuation(ctx, cont) for ctx, cont in requests]
        results: list[float | None] = [None] * len(requests)
        # Fast path: single-token continuations of one context (and variant) need one forward pass together.
        groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        for i, (ctx, cont) in enumerate(encoded):
            if len(cont) == 1:
                groups.setdefault((variants[i] if variants else 0, tuple(ctx)), []).append(i)
        contexts = list(groups)
        for start in range(0, len(contexts), self.batch_size):
            batch = contexts[start : start + self.batch_size]
            self._select(variants, [groups[key][0] for key in batch])
            logprobs = self._last_logprobs([list(ctx) for _, ctx in batch])
            for row, key in zip(logprobs, batch):
                for i in groups[key]:
                    results[i] = float(row[encoded[i][1][0]])
        rest = [i for i, r in enumerate(results) if r is None]
        for start in range(0, len(rest), self.batch_size):
            idx = rest[start : start + self.batch_size]
            self._select(variants, idx)
            for i, value in zip(idx, self._sequence_logprobs([encoded[i] for i in idx])):
                results[i] = value
        return [float(r) for r in results]

    @contextmanager
    def population(self, spectra, mixtures, renormalize="nuclear") -> Iterator["HFBackend"]:
        with FactoredPopulation(self.model, spectra, mixtures, renormalize) as factored:
            self._factored = factored
            try:
                yield self
            finally:
                self._factored = None

    def _select(self, variants: Sequence[int] | None, indices) -> None:
        """Tell the population hooks which candidate each row of the next batch belongs to."""
        if variants is None:
            if self._factored is not None:
                raise InvalidInputError("inside population(), every request needs its variant")
            return
        if self._factored is None:
            raise InvalidInputError("variants are only meaningful inside population()")
        self._factored.rows = torch.tensor([variants[i] for i in indices], dtype=torch.long)

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

    @torch.no_grad()
    def _last_logprobs(self, contexts: list[list[int]]) -> torch.Tensor:
        ids, mask = _pad(contexts, self.tokenizer.pad_token_id, left=True)
        logits = self._forward(ids, mask, keep=1)
        return torch.log_softmax(logits[:, -1, :].float(), dim=-1).cpu()

    @torch.no_grad()
    def _sequence_logprobs(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        # Left padding puts every continuation at the end of its row, so only the last positions' logits
        # are computed (the vocabulary projection and softmax dominate memory on long contexts).
        ids, mask = _pad([c + k for c, k in pairs], self.tokenizer.pad_token_id, left=True)
        keep = max(len(k) for _, k in pairs) + 1
        logits = self._forward(ids, mask, keep)
        out = []
        for row, (_, cont) in enumerate(pairs):
            start = keep - len(cont) - 1
            logprobs = torch.log_softmax(logits[row, start : start + len(cont)].float(), dim=-1)
            picked = logprobs.gather(1, torch.tensor(cont, device=logprobs.device)[:, None])
            out.append(float(picked.sum()))
        return out

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
        # Positions count real tokens only, so a left-padded row scores as it would alone
        # (models with absolute position embeddings, e.g. GPT-2, depend on it).
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                          position_ids=positions.to(self.device), logits_to_keep=keep).logits


def _pad(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(r)
        mask[i, sl] = 1
    return ids, mask


def _cut(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text
