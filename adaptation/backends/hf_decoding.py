"""The hf backend's :class:`~t2reg.adaptation.backends.base.Decoder`: rows that come and go in one KV cache.

A server cannot wait for a whole batch to finish before starting the next
request, and its rows finish at different times. :class:`RowCache` keeps the
KV cache of the rows being decoded *right-aligned* (every row's newest token in
the last column, padding on the left), so new rows join by left-padding the
shorter side and finished rows leave by indexing the batch dimension.
Positions count real tokens only, so a row decodes as it would alone.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from t2reg.adaptation.backends.base import Decoder
from t2reg.adaptation.backends.tokens import left_pad


class RowCache:
    """The KV cache and attention mask of the rows being decoded, right-aligned."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (rows, columns), 1 for real tokens

    @property
    def rows(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    def join(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """Append rows (a prefilled cache and its mask) below the current ones."""
        if self.mask is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        layers = [(_left_pad(k0, width), _left_pad(v0, width), k1, v1)
                  for (k0, v0, _), (k1, v1, _) in zip(self.cache, cache)]
        self.cache = DynamicCache(ddp_cache_data=[(torch.cat([k0, _left_pad(k1, width)]),
                                                   torch.cat([v0, _left_pad(v1, width)]))
                                                  for k0, v0, k1, v1 in layers])
        self.mask = torch.cat([_left_pad(self.mask, width, dim=1), _left_pad(mask, width, dim=1)])

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only these rows (in this order); columns no remaining row uses are dropped."""
        if not indices:
            self.cache = self.mask = None
            return
        if list(indices) == list(range(self.rows)):
            return
        index = torch.tensor(list(indices), dtype=torch.long)
        mask = self.mask[index]
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else mask.shape[1] - 1
        keys = [(k.index_select(0, index.to(k.device))[:, :, start:], v.index_select(0, index.to(v.device))[:, :, start:])
                for k, v, _ in self.cache]
        self.cache = DynamicCache(ddp_cache_data=keys)
        self.mask = mask[:, start:]

    def grow(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One new column for every row: the mask to feed with it and the new tokens' positions."""
        positions = self.mask.sum(dim=1, keepdim=True)  # real tokens so far = the next token's position
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        return self.mask, positions


def _left_pad(t: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    pad = [0, 0] * (t.dim() - (dim % t.dim()) - 1) + [missing, 0]
    return F.pad(t, pad)


def prefill_positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions of left-padded prompt tokens: real tokens count from 0, padding sits at 0."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


# The model call behind every pass: (ids, mask, positions, cache, variants) -> float32 logits of each row's last
# position; the cache grows in place (HFBackend._forward_cached).
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache, Sequence[int | None]], torch.Tensor]


class HFDecoder(Decoder):
    """Continuous batching on a transformers model: prefill joins a right-aligned cache, each step feeds one
    token per row; inside the backend's population every row runs with its own mixture."""

    def __init__(self, forward: Forward, pad_id: int) -> None:
        self.forward, self.pad_id = forward, pad_id
        self.cache = RowCache()

    @property
    def rows(self) -> int:
        return self.cache.rows

    def join(self, prompts: Sequence[Sequence[int]], variants: Sequence[int | None]) -> torch.Tensor:
        ids, mask = left_pad(prompts, self.pad_id)
        cache = DynamicCache()
        logits = self.forward(ids, mask, prefill_positions(mask), cache, variants)
        self.cache.join(cache, mask)  # only once the pass has worked: a failed prefill leaves the rows as they were
        return logits

    def step(self, tokens: Sequence[int], variants: Sequence[int | None]) -> torch.Tensor:
        ids = torch.tensor([[t] for t in tokens], dtype=torch.long)
        mask, positions = self.cache.grow()
        return self.forward(ids, mask, positions, self.cache.cache, variants)

    def keep(self, indices: Sequence[int]) -> None:
        self.cache.keep(indices)
