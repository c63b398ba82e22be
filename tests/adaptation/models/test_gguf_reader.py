"""The bulk GGUF reader builds the fields gguf-py's own reader builds, part for part: on a written file with
every kind of array in both byte orders, and on the real SmolLM2 file."""

import gguf
import numpy as np
import pytest

from t2reg.adaptation.models.gguf_reader import BulkGGUFReader
from tests.conftest import smollm2_gguf


def _same_reading(path) -> int:
    """Compare the two readers' fields and tensors; the number of array elements compared."""
    expected, got = gguf.GGUFReader(path), BulkGGUFReader(path)
    assert list(got.fields) == list(expected.fields)
    elements = 0
    for name, want in expected.fields.items():
        have = got.fields[name]
        assert (have.offset, have.data, have.types) == (want.offset, want.data, want.types), name
        assert len(have.parts) == len(want.parts), name
        for a, b in zip(have.parts, want.parts):
            assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), name
        assert have.contents() == want.contents(), name
        elements += len(want.data) if want.types[:1] == [gguf.GGUFValueType.ARRAY] else 0
    assert [(t.name, t.tensor_type, t.shape.tolist(), t.data_offset) for t in got.tensors] == \
        [(t.name, t.tensor_type, t.shape.tolist(), t.data_offset) for t in expected.tensors]
    assert got.data_offset == expected.data_offset
    return elements


@pytest.mark.parametrize("endian", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG])
def test_every_kind_of_array_in_either_byte_order(tmp_path, endian):
    path = tmp_path / "written.gguf"
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_array("t.strings", ["", "a", "héllo", "▁tok", "x" * 300])
    writer.add_array("t.floats", [0.5, -1.25, 3.0])
    writer.add_array("t.ints", [1, -2, 3])
    writer.add_array("t.bools", [True, False])
    writer.add_array("t.empty", [])
    writer.add_array("t.nested", [[1, 2], [3]])
    writer.add_string("t.string", "one")
    writer.add_uint32("t.scalar", 7)
    writer.add_tensor("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert _same_reading(path) > 10
    assert BulkGGUFReader(path).fields["t.strings"].contents() == ["", "a", "héllo", "▁tok", "x" * 300]


@pytest.mark.slow
def test_the_real_smollm2_file_reads_the_same():
    assert _same_reading(smollm2_gguf()) > 49_152  # the vocabulary, its types and its merges
