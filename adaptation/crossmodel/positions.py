"""Token positions two tokenizers share: where both end a token at the same character.

At such a position both models have read exactly the same text, so what one
model's matrix does there can be compared with what the other's does. Positions
inside a token of either model (one tokenizer splits a word, the other does
not) have no counterpart and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Encoded:
    """One text as one model reads it: token ids (with <bos> where the family needs it) and, per token, the
    character offset where it ends (-1 for <bos>)."""

    ids: list[int]
    ends: list[int]


def encode(tokenizer, text: str, bos: list[int]) -> Encoded:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return Encoded(list(bos) + list(enc["input_ids"]), [-1] * len(bos) + [end for _, end in enc["offset_mapping"]])


def shared_positions(source: Encoded, target: Encoded) -> tuple[list[int], list[int]]:
    """Indices into each encoding of the tokens that end at the same character in both (the last token to
    end there, where a tokenizer emits several, e.g. byte pieces of one character)."""
    last_s = _last_token_ending(source.ends)
    last_t = _last_token_ending(target.ends)
    common = sorted(set(last_s) & set(last_t))
    return [last_s[c] for c in common], [last_t[c] for c in common]


def _last_token_ending(ends: list[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for index, end in enumerate(ends):
        if end > 0:
            found[end] = index
    return found


def right_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded on the right (positions stay 0..len-1, so captured activations index as the text)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask
