"""What a data-driven transfer reads: seeded texts with an identity, and positions two tokenizers share."""

import json

import pytest

from t2reg.adaptation.crossmodel.positions import encode, shared_positions
from t2reg.adaptation.crossmodel.texts import file_texts, parse_texts_option, stems, task_texts
from t2reg.adaptation.tasks import get_task
from t2reg.errors import InvalidInputError, NotFoundError
from tests.helpers.data import require_data
from tests.helpers.tiny_tokenizer import build


def test_task_texts_are_a_seeded_sample_with_an_identity():
    data = require_data()
    arc = get_task("arc-easy")
    a, b = task_texts(arc, "train", 50, 0, data), task_texts(arc, "train", 50, 0, data)
    assert a == b and a.sha256 == b.sha256 and len(a.items) == 50
    other = task_texts(arc, "train", 50, 1, data)
    assert other.sha256 != a.sha256
    assert a.identity() == {"texts": "task:arc-easy:train", "n_texts": 50, "texts_seed": 0, "texts_sha256": a.sha256}
    first_rows = [arc.cloze_prompt(ex) for ex in arc.examples("train", data)[:50]]
    assert [t.split(" ", 1)[0] for t in a.items] != [t.split(" ", 1)[0] for t in first_rows] or \
        a.items[0].rsplit("\n", 1)[0] != first_rows[0]  # never simply the first rows
    assert all(t.startswith("Question: ") and "\nAnswer: " in t for t in a.items)


def test_stems_carry_no_answer():
    arc = get_task("arc-easy")
    drawn = stems(arc, "validation", 20, 0, require_data())
    assert len(drawn) == 20 and all(ex.answer == "" and len(ex.choices) >= 3 for ex in drawn)
    with pytest.raises(InvalidInputError, match="not multiple choice"):
        stems(get_task("gsm8k"), "train", 5, 0, require_data())


def test_texts_files_and_options(tmp_path):
    plain = tmp_path / "t.txt"
    plain.write_text("one\n\ntwo\nthree\n")
    assert file_texts(str(plain), 10, 0).items == ("one", "two", "three")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"text": "a"}) + "\n" + json.dumps({"text": "b"}) + "\n")
    assert file_texts(str(jsonl), 1, 0).items in (("a",), ("b",))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": 1}\n')
    with pytest.raises(InvalidInputError, match="line 1 has no string field 'text'"):
        file_texts(str(bad), 5, 0)
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        file_texts(str(binary), 5, 0)
    with pytest.raises(NotFoundError):
        file_texts(str(tmp_path / "missing.txt"), 5, 0)
    assert parse_texts_option("arc-easy")[1] == "train" and parse_texts_option("arc-easy:validation")[1] == "validation"
    with pytest.raises(InvalidInputError, match="unknown split"):
        parse_texts_option("arc-easy:dev")


def test_shared_positions_are_where_both_tokenizers_end_a_token():
    coarse, fine = build(400), build(280)  # two real BPE tokenizers with different merges
    text = "Question: what do plants need? Answer: light"
    a, b = encode(coarse, text, []), encode(fine, text, [fine.bos_token_id])
    assert len(b.ids) == len(b.ends) and b.ends[0] == -1  # <bos> ends nowhere
    pos_a, pos_b = shared_positions(a, b)
    assert len(pos_a) == len(pos_b) > 3
    assert [a.ends[i] for i in pos_a] == [b.ends[j] for j in pos_b]  # the same character, in order
    assert a.ends[pos_a[-1]] == len(text)  # the text's end is always shared
    assert len(set(a.ends[i] for i in pos_a)) == len(pos_a)
    same = shared_positions(a, a)
    assert same[0] == same[1] and len(same[0]) == len(set(e for e in a.ends if e > 0))
