"""The decode loop's per-row parts: greedy and seeded sampling per row, a row that cannot pick a token fails
alone, text is released only where it can no longer change (the rows' cache: tests/adaptation/backends)."""

import torch

from t2reg.adaptation.serving.decoding import RowSampling, SamplingError, TextStream, pick_tokens
from tests.helpers.tiny_tokenizer import build


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
