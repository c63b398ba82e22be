"""The expert file, format v1: a safetensors file of 1-D float32 SVF vectors.

Tensor keys are the base model's own parameter names; ``__metadata__`` holds
strings only (nested values as JSON text). :func:`loads_expert` refuses any
file that breaks the format with a message naming the problem; nothing here
ever unpickles.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from t2reg import __version__, safetensors_io
from t2reg.files import land_bytes
from t2reg.errors import ExpertFileError
from t2reg.enums import Source

FORMAT = "t2reg.expert"
FORMAT_VERSION = "1"
PARAMETRIZATIONS = ("scale",)
RENORMALIZATIONS = ("nuclear", "none")
_REQUIRED_KEYS = ("format", "format_version", "base_model", "parametrization", "renormalize")


@dataclass(frozen=True)
class Metric:
    """One score: ``task:metric = value`` on ``split`` over ``n`` examples."""

    task: str
    metric: str
    value: float
    split: str | None = None
    n: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "value": self.value, "split": self.split, "n": self.n}


@dataclass(frozen=True)
class ExpertMeta:
    """The ``__metadata__`` of an expert file, typed."""

    base_model: str
    architecture: str = ""
    base_model_revision: str = ""
    parametrization: str = "scale"
    renormalize: str = "nuclear"
    task: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=lambda: {"source": Source.NATIVE.value})
    metrics: tuple[Metric, ...] = ()
    created_by: str = f"t2reg {__version__}"

    @property
    def source(self) -> str:
        return str(self.provenance.get("source", Source.NATIVE.value))

    def to_header(self) -> dict[str, str]:
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model,
            "base_model_revision": self.base_model_revision,
            "architecture": self.architecture,
            "parametrization": self.parametrization,
            "renormalize": self.renormalize,
            "provenance": json.dumps(dict(self.provenance), sort_keys=True),
            "created_by": self.created_by,
        }
        if self.task:
            header["task"] = self.task
        if self.metrics:
            header["metrics"] = json.dumps([m.to_dict() for m in self.metrics])
        return header


@dataclass
class Expert:
    """An SVF expert: one z vector per adapted matrix, plus its metadata."""

    vectors: dict[str, np.ndarray]
    meta: ExpertMeta

    @property
    def n_params(self) -> int:
        return int(sum(v.size for v in self.vectors.values()))


def constant_expert(
    ranks: Mapping[str, int],
    meta: ExpertMeta,
    value: float = 1.0,
    noise: float = 0.0,
    seed: int = 0,
) -> Expert:
    """An expert with every z = ``value`` (1 is the identity), plus optional Gaussian noise.

    The usual starting point for training, and a quick way to try the registry.
    """
    rng = np.random.default_rng(seed)
    vectors = {
        name: (value + noise * rng.standard_normal(rank)).astype(np.float32) for name, rank in sorted(ranks.items())
    }
    return Expert(vectors, meta)


def dumps_expert(expert: Expert) -> bytes:
    """Serialise to format v1 bytes (validated first, so a bad expert is never written).

    The bytes are deterministic: equal experts give equal files, so the
    content-addressed store keeps one copy.
    """
    vectors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in expert.vectors.items()}
    _check_vectors(vectors, "expert")
    _check_meta_values(expert.meta, "expert")
    return safetensors_io.dumps(vectors, expert.meta.to_header())


def write_expert(expert: Expert, path: str | os.PathLike[str]) -> Path:
    """Write an expert file atomically (see :mod:`t2reg.files`)."""
    return land_bytes(path, dumps_expert(expert))


MAX_FILE_BYTES = 1 << 30  # 1 GiB: an expert over every matrix of a 70B model is about 20 MB


EXPERT_HEADER_MAX = 16 << 20  # an expert's header: a few hundred tensor entries and its metadata, far below this


@contextmanager
def _open_regular(path: str | os.PathLike[str], limit: int) -> Iterator[tuple[BinaryIO, int]]:
    """A regular file open for reading, and its size, with one-line errors for the usual ways that fails.

    A FIFO, a device (``/dev/zero``) or a socket is refused without reading: one would block forever, another
    never end. Opened non-blocking, then checked on the open descriptor, so a path swapped between check and
    read changes nothing.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ExpertFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ExpertFileError(f"{path}: is a directory, not an expert file") from None
    except PermissionError:
        raise ExpertFileError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ExpertFileError(f"{path}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ExpertFileError(f"{path}: is a directory, not an expert file")
        if not stat.S_ISREG(info.st_mode):
            raise ExpertFileError(f"{path}: not a regular file (a FIFO, device or socket); refusing to read it")
        if info.st_size > limit:
            raise ExpertFileError(f"{path}: {info.st_size} bytes; an expert file is at most {limit}")
        os.set_blocking(fd, True)
        yield fh, info.st_size


def read_expert_bytes(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """An expert file's bytes, judged by its header before its data is read.

    A safetensors file's first 8 bytes give its header's length: one beyond :data:`EXPERT_HEADER_MAX` (or
    the file) is refused at once, and so is a header that is not an expert's (no t2reg metadata, a tensor that
    is not a float32 vector) or that describes a file of another size. So a gigabyte of junk costs a few bytes
    of reading, not a gigabyte of memory. Only then is the rest read (and :func:`loads_expert` checks it all).
    """
    origin = str(path)
    with _open_regular(path, limit) as (fh, size):
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise ExpertFileError(f"{origin}: not a safetensors file (only {len(prefix)} bytes)")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > EXPERT_HEADER_MAX:
            raise ExpertFileError(f"{origin}: not a safetensors file, or not an expert: its first 8 bytes claim a "
                                  f"{header_size}-byte header; an expert's is at most {EXPERT_HEADER_MAX}")
        head = prefix + fh.read(header_size)
        header, _ = safetensors_io.parse_header(head, size, origin, ExpertFileError)
        _parse_meta(_check_metadata_strings(header.pop("__metadata__", None), origin), origin)
        _check_tensor_entries(header, size - 8 - header_size, origin)
        described = 8 + header_size + max((entry["data_offsets"][1] for entry in header.values()), default=0)
        if described != size:
            raise ExpertFileError(f"{origin}: its header describes {described} bytes, but the file has {size}")
        data = head + fh.read(size - len(head) + 1)
    if len(data) != size:
        raise ExpertFileError(f"{origin}: changed while it was read ({len(data)} bytes, not {size})")
    return data


def read_expert(path: str | os.PathLike[str]) -> Expert:
    """Read and validate an expert file."""
    return loads_expert(read_expert_bytes(path), str(path))


def loads_expert(data: bytes, origin: str = "<bytes>") -> Expert:
    """Parse and validate format v1 bytes; ``origin`` names the file in errors."""
    header, header_size = safetensors_io.parse_header(data, len(data), origin, ExpertFileError)
    raw_meta = header.pop("__metadata__", None)
    meta = _parse_meta(_check_metadata_strings(raw_meta, origin), origin)
    _check_tensor_entries(header, len(data) - 8 - header_size, origin)
    try:
        vectors = st_load(data)
    except (SafetensorError, ValueError, TypeError, OverflowError, KeyError) as exc:
        raise ExpertFileError(f"{origin}: not a valid safetensors file ({exc})") from None
    _check_vectors(vectors, origin)
    return Expert(vectors=dict(vectors), meta=meta)


def check_against_model(expert: Expert, ranks: Mapping[str, int], model: str, origin: str = "expert") -> None:
    """Refuse vectors that name no matrix of ``model`` or have the wrong length.

    ``ranks`` maps each adaptable parameter name of the model to ``min(out, in)``.
    """
    for key in sorted(expert.vectors):
        if key not in ranks:
            raise ExpertFileError(f"{origin}: tensor {key!r} is not an adaptable matrix of model {model!r}")
        if expert.vectors[key].shape[0] != ranks[key]:
            raise ExpertFileError(
                f"{origin}: tensor {key!r} has length {expert.vectors[key].shape[0]}, "
                f"but that matrix of {model!r} has rank {ranks[key]}"
            )


def _check_metadata_strings(raw: Any, origin: str) -> dict[str, str]:
    if raw is None:
        raise ExpertFileError(f"{origin}: no __metadata__; not a t2reg expert file (missing 'format')")
    if not isinstance(raw, dict):
        raise ExpertFileError(f"{origin}: __metadata__ is not a JSON object")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ExpertFileError(
                f"{origin}: metadata {key!r} is a {type(value).__name__}; safetensors metadata values must be strings"
            )
    return raw


def _check_tensor_entries(header: Mapping[str, Any], data_bytes: int, origin: str) -> None:
    # Checked before safetensors reads them so truncation and wrong kinds are named as such,
    # and so no ill-typed entry (a string as shape, a float as offset) reaches the reader.
    for key, entry in header.items():
        if not isinstance(entry, dict) or not _is_int_list(entry.get("data_offsets"), 2):
            raise ExpertFileError(f"{origin}: tensor {key!r} has a malformed header entry")
        if entry.get("dtype") != "F32":
            raise ExpertFileError(f"{origin}: tensor {key!r} has dtype {entry.get('dtype')!r}; format v1 stores float32 (F32)")
        if not _is_int_list(entry.get("shape"), 1):
            raise ExpertFileError(f"{origin}: tensor {key!r} has shape {entry.get('shape')!r}; SVF vectors are 1-D")
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end:
            raise ExpertFileError(f"{origin}: tensor {key!r} has data offsets {begin}..{end}")
        if end > data_bytes:
            raise ExpertFileError(
                f"{origin}: truncated: tensor {key!r} ends at byte {end} of the data, which has only {data_bytes}"
            )
        if end - begin != 4 * entry["shape"][0]:
            raise ExpertFileError(f"{origin}: tensor {key!r} holds {end - begin} bytes, not 4 x {entry['shape'][0]}")


def _is_int_list(value: Any, length: int) -> bool:
    return (isinstance(value, list) and len(value) == length
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value))


def _parse_meta(raw: Mapping[str, str], origin: str) -> ExpertMeta:
    for key in _REQUIRED_KEYS:
        if key not in raw:
            raise ExpertFileError(f"{origin}: metadata lacks {key!r}; not a t2reg expert file")
    if raw["format"] != FORMAT:
        raise ExpertFileError(f"{origin}: metadata format is {raw['format']!r}, expected {FORMAT!r}")
    if raw["format_version"] != FORMAT_VERSION:
        raise ExpertFileError(
            f"{origin}: unknown format_version {raw['format_version']!r}; this t2reg reads version {FORMAT_VERSION}"
        )
    meta = ExpertMeta(
        base_model=raw["base_model"],
        architecture=raw.get("architecture", ""),
        base_model_revision=raw.get("base_model_revision", ""),
        parametrization=raw["parametrization"],
        renormalize=raw["renormalize"],
        task=raw.get("task") or None,
        provenance=_json_field(raw, "provenance", dict, origin) or {"source": Source.NATIVE.value},
        metrics=tuple(_parse_metric(m, origin) for m in _json_field(raw, "metrics", list, origin) or []),
        created_by=raw.get("created_by", ""),
    )
    _check_meta_values(meta, origin)
    return meta


def _check_meta_values(meta: ExpertMeta, origin: str) -> None:
    if meta.parametrization not in PARAMETRIZATIONS:
        raise ExpertFileError(f"{origin}: parametrization {meta.parametrization!r} is not one of {PARAMETRIZATIONS}")
    if meta.renormalize not in RENORMALIZATIONS:
        raise ExpertFileError(f"{origin}: renormalize {meta.renormalize!r} is not one of {RENORMALIZATIONS}")
    if meta.source not in Source.values():
        raise ExpertFileError(f"{origin}: provenance source {meta.source!r} is not one of {Source.values()}")


def _json_field(raw: Mapping[str, str], key: str, kind: type, origin: str) -> Any:
    if not raw.get(key):
        return None
    try:
        value = json.loads(raw[key])
    except (json.JSONDecodeError, RecursionError):
        raise ExpertFileError(f"{origin}: metadata {key!r} is not valid JSON") from None
    if not isinstance(value, kind):
        raise ExpertFileError(f"{origin}: metadata {key!r} must be a JSON {kind.__name__}")
    return value


def _parse_metric(entry: Any, origin: str) -> Metric:
    # JSON types are checked here (a dict as split, 1e400 as n); the registry then applies the
    # same rules to these scores as to typed ones (names, 1 <= n) before storing them.
    if not isinstance(entry, dict):
        raise ExpertFileError(f"{origin}: metrics entry {entry!r} is not a JSON object")
    task, metric, value, split, n = (entry.get(k) for k in ("task", "metric", "value", "split", "n"))
    if not isinstance(task, str) or not isinstance(metric, str):
        raise ExpertFileError(f"{origin}: metrics entry {entry!r} needs task and metric as strings")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExpertFileError(f"{origin}: metrics entry {entry!r} needs a finite value (a number)")
    if split is not None and not isinstance(split, str):
        raise ExpertFileError(f"{origin}: metrics entry {entry!r}: split must be a string")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise ExpertFileError(f"{origin}: metrics entry {entry!r}: n must be a whole number")
    return Metric(task, metric, float(value), split, n)


def _check_vectors(vectors: Mapping[str, np.ndarray], origin: str) -> None:
    if not vectors:
        raise ExpertFileError(f"{origin}: holds no tensors")
    for key, vec in vectors.items():
        if vec.ndim != 1:
            raise ExpertFileError(f"{origin}: tensor {key!r} has shape {list(vec.shape)}; SVF vectors are 1-D")
        if vec.dtype != np.float32:
            raise ExpertFileError(f"{origin}: tensor {key!r} has dtype {vec.dtype}; format v1 stores float32")
        if vec.size == 0:
            raise ExpertFileError(f"{origin}: tensor {key!r} is empty")
        if not np.isfinite(vec).all():
            raise ExpertFileError(f"{origin}: tensor {key!r} contains NaN or Inf")
