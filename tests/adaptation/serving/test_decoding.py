"""The decode-loop parts on tiny real models: rows that join and leave a running batch decode exactly as
transformers' own greedy generation does alone; text is released only where it can no longer change."""

import pytest
import torch

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.backends.tokens import left_pad
from t2reg.adaptation.serving.decoding import (
    RowCache,
    RowSampling,
    SamplingError,
    TextStream,
    pick_tokens,
    prefill_positions,
)
from tests.helpers.backend_calls import generate
from tests.helpers.tiny_tokenizer import build, save_model_with_tokenizer

PROMPTS = ["Answer the following question.\n\n", "Solve", "Question: what do plants need? (A) light", "The answer is"]
NEW_TOKENS = 12


def _staggered(backend, prompts, joins_every=3):
    """A hand-run decode loop: one prompt joins every ``joins_every`` steps; rows leave when done."""
    from transformers import DynamicCache

    tok, eos = backend.tokenizer, backend.tokenizer.eos_token_id
    cache, rows, outputs, waiting, step, widths = RowCache(), [], {}, list(enumerate(prompts)), 0, []
    while waiting or rows:
        if waiting and step % joins_every == 0:
            index, prompt = waiting.pop(0)
            ids, mask = left_pad([tok(prompt, add_special_tokens=False).input_ids], tok.pad_token_id)
            prefill = DynamicCache()
            logits = backend.forward_cached(ids, mask, prefill_positions(mask), prefill, [None])
            cache.join(prefill, mask)
            rows.append((index, pick_tokens(logits, [RowSampling()])))
        else:
            mask, positions = cache.grow()
            logits = backend.forward_cached(torch.tensor([[r[1][-1]] for r in rows]), mask, positions, cache.cache,
                                           [None] * len(rows))
            for row, token in zip(rows, pick_tokens(logits, [RowSampling()] * len(rows))):
                row[1].append(token)
        keep = []
        for i, (index, ids) in enumerate(rows):
            if len(ids) >= NEW_TOKENS or ids[-1] == eos:
                outputs[index] = tok.decode(ids, skip_special_tokens=True)
            else:
                keep.append(i)
        rows = [rows[i] for i in keep]
        cache.keep(keep)
        widths.append(0 if cache.mask is None else cache.mask.shape[1])
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


def test_greedy_is_argmax_and_a_seeded_row_samples_alike_in_any_batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, generator=g)
    assert pick_tokens(logits, [RowSampling()] * 3) == logits.argmax(-1).tolist()
    alone = [pick_tokens(logits[1:2], [RowSampling(1.0, seed=7)])[0] for _ in range(2)]
    in_batch = pick_tokens(logits, [RowSampling(0.8, seed=3), RowSampling(1.0, seed=7), RowSampling()])[1]
    assert alone[0] == alone[1] == in_batch
    draws = {pick_tokens(logits[:1], [RowSampling(1.0, seed=s)])[0] for s in range(40)}
    assert len(draws) > 3  # really sampled
    # top_p keeps only the most likely tokens: a tiny nucleus is greedy
    for top_p in (1e-6, 5e-324):  # the second is 0 in float32: still the most likely token, not an empty nucleus
        assert {pick_tokens(logits[:1], [RowSampling(1.0, top_p=top_p, seed=s)])[0] for s in range(10)} == \
            {int(logits[0].argmax())}


def test_a_row_whose_logits_are_not_finite_gets_an_error_and_the_others_their_tokens():
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(1))
    logits[1, 7] = float("nan")
    logits[2, 3] = float("inf")
    logits[3] = float("-inf")
    logits[4, 9] = float("-inf")  # a token ruled out is fine
    rows = [RowSampling(), RowSampling(), RowSampling(1.0, seed=2), RowSampling(), RowSampling(1.0, seed=2)]
    picked = pick_tokens(logits, rows)
    assert picked[0] == int(logits[0].argmax()) and isinstance(picked[4], int) and picked[4] != 9
    assert all(isinstance(p, SamplingError) for p in picked[1:4])
    # a temperature too small for float32 overflows the division: that row's draw fails, not the batch
    tiny = pick_tokens(logits[[0, 4]], [RowSampling(1e-300, seed=1), RowSampling()])
    assert isinstance(tiny[0], SamplingError) and tiny[1] == int(logits[4].argmax())


class _Chars:
    """A tokenizer whose tokens are the characters of a fixed alphabet (and -1 for half a character)."""

    alphabet = "abc END\n"

    def decode(self, ids, skip_special_tokens=True):
        return "".join("\ufffd" if i < 0 else self.alphabet[i] for i in ids)


def _push_all(stream, text):
    out, stopped = [], False
    for ch in text:
        delta, stopped = stream.push(-1 if ch == "?" else _Chars.alphabet.index(ch))
        out.append(delta)
        if stopped:
            break
    return out, stopped


def test_text_is_held_back_while_it_may_start_a_stop_string():
    stream = TextStream(_Chars(), stop=("END",))
    deltas, stopped = _push_all(stream, "ab EN")
    assert "".join(deltas) == "ab " and not stopped  # "EN" may be the start of "END"
    deltas, stopped = _push_all(stream, "c")
    assert deltas == ["ENc"] and not stopped  # it was not
    deltas, stopped = _push_all(stream, "a END b")
    assert stopped and stream.text == "ab ENca " and "".join(deltas) == "a "
    assert stream.flush() == ""


def test_half_characters_wait_and_the_tail_is_flushed_at_the_end():
    stream = TextStream(_Chars())
    deltas, _ = _push_all(stream, "ab?")
    assert "".join(deltas) == "ab"
    assert stream.flush() == "\ufffd" and stream.text == "ab\ufffd"


def test_streamed_pieces_add_up_to_the_whole_text_with_a_real_tokenizer():
    tok = build()
    ids = tok("The answer is (B). Solve the following math problem", add_special_tokens=False).input_ids
    stream = TextStream(tok, stop=("math",))
    pieces, stopped = [], False
    for token in ids:
        delta, stopped = stream.push(token)
        pieces.append(delta)
        if stopped:
            break
    assert stopped and "".join(pieces) == stream.text == "The answer is (B). Solve the following "
