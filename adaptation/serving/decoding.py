"""The parts of a decode loop that serving keeps per row, whatever backend decodes.

The rows' KV cache is the backend's (:class:`~t2reg.adaptation.backends.base.Decoder`);
what a row needs beyond it lives here:

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

from t2reg.errors import T2RegError

_INCOMPLETE = "\ufffd"  # what a tokenizer decodes half a UTF-8 character to


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
