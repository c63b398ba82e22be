"""The few safetensors operations the library's reader does not offer.

* A deterministic writer: safetensors' own orders metadata through a hash map,
  so equal content would give different bytes (and different blob hashes).
* A header reader that names each kind of damage, for clear refusals.
* Zero-copy loading by memory map: ``safe_open().get_tensor`` copies.

Reading tensor data for validation still goes through the safetensors library.
Only float32 (``F32``) tensors are written or mapped: experts and spectra hold nothing else.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.files import landing

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit safetensors itself enforces


def encode(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> tuple[bytes, list[np.ndarray]]:
    """Header bytes (length prefix included) and the arrays to follow it, keys sorted."""
    arrays = {k: np.ascontiguousarray(v, dtype="<f4") for k, v in sorted(tensors.items())}
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    offset = 0
    for name, arr in arrays.items():
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(blob)) + blob, list(arrays.values())


def dumps(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    head, arrays = encode(tensors, metadata)
    return b"".join([head, *(a.tobytes() for a in arrays)])


def write_file(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """Write atomically (see :mod:`t2reg.files`); return the file's sha256."""
    head, arrays = encode(tensors, metadata)
    digest = hashlib.sha256(head)
    with landing(path) as fh:
        fh.write(head)
        for arr in arrays:
            view = memoryview(arr).cast("B")
            fh.write(view)
            digest.update(view)
    return digest.hexdigest()


def parse_header(data: bytes | memoryview, total_size: int, origin: str, error=InvalidInputError) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and its length, or ``error`` naming what is wrong.

    ``data`` needs only hold the file's first bytes (at least the header);
    ``total_size`` is the whole file's size.
    """
    if total_size < 8:
        raise error(f"{origin}: not a safetensors file (only {total_size} bytes)")
    (size,) = struct.unpack("<Q", bytes(data[:8]))
    if size > MAX_HEADER_BYTES or size + 8 > total_size:
        raise error(
            f"{origin}: not a safetensors file or truncated: header claims {size} bytes, "
            f"file has {total_size - 8} after the length prefix"
        )
    try:
        header = json.loads(bytes(data[8 : 8 + size]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{origin}: not a safetensors file (header is not JSON)") from None
    except RecursionError:  # thousands of nested brackets
        raise error(f"{origin}: not a safetensors file (header is nested too deeply)") from None
    if not isinstance(header, dict):
        raise error(f"{origin}: not a safetensors file (header is not a JSON object)")
    return header, size


def mmap_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Map a float32 safetensors file; arrays are views of the page cache, not copies."""
    with path.open("rb") as fh:
        prefix = fh.read(8)
        size = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else 0
        head = prefix + fh.read(min(size, MAX_HEADER_BYTES))
    header, size = parse_header(head, path.stat().st_size, str(path))
    metadata = header.pop("__metadata__", {}) or {}
    # Copy-on-write mapping: writable for torch.from_numpy, yet never written back.
    raw = np.memmap(path, dtype=np.uint8, mode="c", offset=8 + size)
    arrays = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise InvalidInputError(f"{path}: tensor {name!r} is {entry['dtype']}, expected F32")
        begin, end = entry["data_offsets"]
        arrays[name] = raw[begin:end].view("<f4").reshape(entry["shape"])
    return arrays, metadata
