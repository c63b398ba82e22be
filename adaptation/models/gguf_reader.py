"""A GGUF reader that parses metadata arrays in bulk, with the same fields as ``gguf.GGUFReader``.

gguf-py's reader walks every element of a metadata array through a fresh memory-mapped view: a tokenizer's
vocabulary (Gemma-3 has 262,144 tokens, each with a score and a type) costs about ten seconds to parse on this
CPU, most of a Gemma conversion's reading. The fields themselves are only views into the file, so they can be
made faster: a scalar array is one view cut into per-element slices, a string array's lengths are read with
``struct`` and each string sliced from one plain view of the file. The result is the reader gguf-py would have
built, part for part (tests/adaptation/models/test_gguf_reader.py compares the two on real files).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType


class BulkGGUFReader(GGUFReader):
    """``gguf.GGUFReader`` with arrays of scalars and of strings parsed in bulk."""

    def _get_field_parts(self, orig_offs: int, raw_type: int) -> tuple[int, list[Any], list[int], list[GGUFValueType]]:
        if GGUFValueType(raw_type) != GGUFValueType.ARRAY:
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        alen = self._get(orig_offs + int(raw_itype.nbytes), np.uint64)
        itype = GGUFValueType(raw_itype[0])
        start = orig_offs + int(raw_itype.nbytes) + int(alen.nbytes)
        count = int(alen[0])
        if count == 0 or (itype != GGUFValueType.STRING and itype not in self.gguf_scalar_to_np):
            return super()._get_field_parts(orig_offs, raw_type)  # empty or nested arrays: the element-wise walk
        if itype == GGUFValueType.STRING:
            end, elements, indices = self._strings(start, count)
        else:
            end, elements, indices = self._scalars(start, count, self.gguf_scalar_to_np[itype])
        return end - orig_offs, [raw_itype, alen, *elements], indices, [GGUFValueType.ARRAY, itype]

    def _order(self, dtype: Any) -> np.dtype:
        """``dtype`` in the file's byte order, as ``_get`` gives it."""
        return np.dtype(dtype).newbyteorder(self.byte_order)

    def _plain(self) -> np.ndarray:
        # Slicing the memmap itself is what makes the element-wise walk slow (each slice is a new memmap object).
        return self.data.view(np.ndarray)

    def _scalars(self, start: int, count: int, dtype: Any) -> tuple[int, list[np.ndarray], list[int]]:
        size = np.dtype(dtype).itemsize
        values = self._plain()[start : start + size * count].view(self._order(dtype))
        return start + size * count, [values[i : i + 1] for i in range(count)], list(range(2, 2 + count))

    def _strings(self, start: int, count: int) -> tuple[int, list[np.ndarray], list[int]]:
        data = self._plain()
        length_type = self._order(np.uint64)
        length = struct.Struct({">": ">Q", "<": "<Q"}.get(length_type.byteorder, "=Q"))  # '=': this host's order
        parts: list[np.ndarray] = []
        offs = start
        for _ in range(count):
            n = length.unpack_from(data, offs)[0]
            parts.append(data[offs : offs + 8].view(length_type))
            parts.append(data[offs + 8 : offs + 8 + n])
            offs += 8 + n
        return offs, parts, list(range(3, 3 + 2 * count, 2))
