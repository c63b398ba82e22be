"""Converting a GGUF file parses its metadata once, not once per thing transformers loads from it."""

import gguf
import pytest

from t2reg.adaptation.models.files import one_gguf_parse
from tests.conftest import smollm2_gguf


@pytest.mark.slow
def test_within_the_block_one_file_is_parsed_once_and_the_reader_class_comes_back():
    original = gguf.GGUFReader
    path = smollm2_gguf()
    with one_gguf_parse():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # the same file by another spelling: no second parse
        assert first.fields["general.architecture"].contents() == "llama"
    assert gguf.GGUFReader is original


def test_the_reader_class_comes_back_after_an_error():
    original = gguf.GGUFReader
    with pytest.raises(RuntimeError), one_gguf_parse():
        raise RuntimeError("a failed conversion")
    assert gguf.GGUFReader is original
