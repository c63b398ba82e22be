"""The hf decoder on tiny real models of four architectures: rows that join and leave a running batch decode
exactly as transformers' own greedy generation does alone, and the cache never outgrows the longest row."""

import pytest
import torch

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.backends.hf_decoding import RowCache
from tests.helpers.backend_calls import generate
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

PROMPTS = ["Answer the following question.\n\n", "Solve", "Question: what do plants need? (A) light", "The answer is"]
NEW_TOKENS = 12


def _staggered(backend, prompts, joins_every=3):
    """A hand-run decode loop: one prompt joins every ``joins_every`` steps; rows leave when done."""
    tok, eos = backend.tokenizer, backend.tokenizer.eos_token_id
    decoder, rows, outputs, waiting, step, widths = backend.decoder(), [], {}, list(enumerate(prompts)), 0, []
    while waiting or rows:
        if waiting and step % joins_every == 0:
            index, prompt = waiting.pop(0)
            logits = decoder.join([tok(prompt, add_special_tokens=False).input_ids], [None])
            rows.append((index, [int(logits[0].argmax())]))
        else:
            logits = decoder.step([r[1][-1] for r in rows], [None] * len(rows))
            for row, token in zip(rows, logits.argmax(-1).tolist()):
                row[1].append(token)
        keep = []
        for i, (index, ids) in enumerate(rows):
            if len(ids) >= NEW_TOKENS or ids[-1] == eos:
                outputs[index] = tok.decode(ids, skip_special_tokens=True)
            else:
                keep.append(i)
        rows = [rows[i] for i in keep]
        decoder.keep(keep)
        widths.append(0 if decoder.cache.mask is None else decoder.cache.mask.shape[1])
        step += 1
    return [outputs[i] for i in range(len(prompts))], widths


@pytest.mark.parametrize("architecture", ["LlamaForCausalLM", "GPT2LMHeadModel", "Gemma3ForCausalLM",
                                          "Phi3ForCausalLM"])
def test_rows_that_join_and_leave_decode_as_they_would_alone(tmp_path, architecture):
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", architecture, seed=0,
                                                          initializer_range=0.3))
    alone = [generate(backend, [p], NEW_TOKENS)[0] for p in PROMPTS]
    assert len(set(alone)) == len(PROMPTS) and all(alone)  # distinct, non-empty: a real comparison
    staggered, widths = _staggered(backend, PROMPTS)
    assert staggered == alone
    # Columns no row uses are dropped: the cache never outgrows the longest row alive.
    longest = max(len(backend.tokenizer(p, add_special_tokens=False).input_ids) for p in PROMPTS) + NEW_TOKENS
    assert max(widths) <= longest and widths[-1] == 0


def test_a_prefill_that_fails_leaves_the_rows_as_they_were(tmp_path):
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", seed=0))
    decoder = backend.decoder()
    decoder.join([backend.tokenizer("Solve", add_special_tokens=False).input_ids], [None])
    with pytest.raises(IndexError):
        decoder.join([[10**6, 10**6]], [None])  # no such token: the embedding lookup raises
    assert decoder.rows == 1 and decoder.cache.mask.shape[0] == 1
    assert decoder.step([1], [None]).shape[0] == 1


def test_row_cache_joins_right_aligned_and_keeps_rows_in_order():
    def layer_cache(rows, width, value):
        from transformers import DynamicCache

        keys = torch.full((rows, 1, width, 2), float(value))
        return DynamicCache(ddp_cache_data=[(keys, keys + 100)])

    cache = RowCache()
    cache.join(layer_cache(1, 3, 1), torch.tensor([[0, 1, 1]]))
    cache.join(layer_cache(2, 5, 2), torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]))
    assert cache.mask.tolist() == [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    keys = next(iter(cache.cache))[0]
    assert keys[0, 0, :, 0].tolist() == [0, 0, 1, 1, 1] and keys[1, 0, :, 0].tolist() == [2] * 5
    mask, positions = cache.grow()
    assert positions.tolist() == [[2], [5], [3]] and mask[:, -1].tolist() == [1, 1, 1]
    cache.cache.update(torch.full((3, 1, 1, 2), 9.0), torch.full((3, 1, 1, 2), 109.0), 0)  # what a forward adds
    cache.keep([2, 0])  # the full-width row leaves: two leading columns are free now
    assert cache.mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]
    keys, values, _ = next(iter(cache.cache))
    assert keys.shape[2] == 4 and values[0, 0, 0, 0] == 102
    cache.keep([])
    assert cache.rows == 0 and cache.cache is None
