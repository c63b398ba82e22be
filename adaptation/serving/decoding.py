"""The parts of a decode loop whose rows come and go (continuous batching).

A server cannot wait for a whole batch to finish before starting the next
request, and its rows finish at different times. Three pieces make that work
with an ordinary transformers model:

* :class:`RowCache`: the KV cache of the rows being decoded, kept
  *right-aligned* (every row's newest token in the last column, padding on the
  left), so new rows join by left-padding the shorter side and finished rows
  leave by indexing the batch dimension. Positions count real tokens only, so
  a row decodes as it would alone.
* :func:`pick_tokens`: each row's next token, greedy or sampled from its own
  seeded generator (a sampled row is reproducible whatever else shares its
  batch); a row whose logits are not finite gets a :class:`SamplingError`
  instead, so it can fail alone.
* :class:`TextStream`: token ids to text deltas that are safe to send: no
  half UTF-8 characters, nothing that may turn out to be the start of a stop
  string, and the text up to the first stop string once one appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from t2reg.errors import T2RegError

_INCOMPLETE = "\ufffd"  # what a tokenizer decodes half a UTF-8 character to


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


# -- choosing tokens ---------------------------------------------------------------------------------


MIN_TEMPERATURE = 1e-5  # a request's temperature below this is greedy (vLLM's rule); see scheduler.Completion


class SamplingError(T2RegError):
    """One row's next token cannot be chosen (its logits, or its probabilities, are not finite numbers)."""


@dataclass
class RowSampling:
    """How one row picks its tokens: greedy (``temperature`` 0), or sampled from its own generator."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sampled:
            self.generator = torch.Generator()
            if self.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(self.seed)

    @property
    def sampled(self) -> bool:
        return self.temperature > 0

    def sample(self, logits: torch.Tensor) -> int:
        """A token drawn from one row's finite float32 logits."""
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            probs = _nucleus(probs, self.top_p)
        if not bool(torch.isfinite(probs).all()):
            raise SamplingError(f"the probabilities at temperature {self.temperature} are not finite numbers")
        return int(torch.multinomial(probs, 1, generator=self.generator))


def pick_tokens(logits: torch.Tensor, rows: Sequence[RowSampling]) -> list[int | SamplingError]:
    """The next token of each row from its float32 logits (rows, vocabulary), or, for a row whose token
    cannot be chosen, the reason: that row alone fails, the others go on."""
    logits = logits.float().cpu()
    picked: list[int | SamplingError] = logits.argmax(dim=-1).tolist()  # the first maximum on ties, as
    # transformers' greedy search does
    usable = torch.isfinite(logits.max(dim=-1).values).tolist()  # max is NaN where any logit is NaN
    for i, row in enumerate(rows):
        if not usable[i]:
            picked[i] = SamplingError("the model's logits for this request are not finite numbers")
        elif row.sampled:
            try:
                picked[i] = row.sample(logits[i])
            except SamplingError as exc:
                picked[i] = exc
            except RuntimeError as exc:  # torch's own refusal of the draw
                picked[i] = SamplingError(f"sampling failed: {exc}")
    return picked


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The smallest set of most likely tokens whose mass reaches ``top_p``, renormalised."""
    ordered, order = probs.sort(descending=True)
    before = ordered.cumsum(0) - ordered  # mass strictly above each token
    dropped = before >= top_p
    dropped[0] = False  # the most likely token always stays (a top_p that float32 rounds to 0 would drop it)
    ordered[dropped] = 0.0
    kept = torch.zeros_like(probs).scatter_(0, order, ordered)
    return kept / kept.sum()


# -- tokens to text ----------------------------------------------------------------------------------


class TextStream:
    """A row's text as its tokens arrive, released only where it can no longer change."""

    def __init__(self, tokenizer, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.text = ""  # everything decoded so far (cut at a stop string once one appears)
        self.sent = 0  # characters of ``text`` already released

    def push(self, token: int) -> tuple[str, bool]:
        """Add a token: the text now safe to release, and whether a stop string has ended the row."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            self.text = text[: min(cuts)]
            return self.flush(), True
        self.text = text
        safe = releasable(text, self.stop)
        if safe <= self.sent:
            return "", False
        delta, self.sent = text[self.sent : safe], safe
        return delta, False

    def flush(self) -> str:
        """Whatever is still held back (the row has ended)."""
        delta, self.sent = self.text[self.sent :], max(self.sent, len(self.text))
        return delta


def releasable(text: str, stop: Sequence[str] = ()) -> int:
    """How much of ``text`` can no longer change as tokens are added: all but a trailing half character
    and a trailing start of a stop string."""
    held = len(text) - len(text.rstrip(_INCOMPLETE))
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                held = max(held, n)
                break
    return len(text) - held
