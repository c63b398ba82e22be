"""Property-based fuzzing of the expert file parser: thousands of mutated files, each accepted or refused with
exit code 4, none ending in anything else (exit 1 would be an "internal error")."""

import json
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2reg.errors import T2RegError
from t2reg.expert_file import Expert, ExpertMeta, Metric, dumps_expert, loads_expert

FUZZ = settings(max_examples=2000, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
VALID = dumps_expert(Expert({"model.layers.0.mlp.down_proj.weight": np.linspace(0.5, 1.5, 8, dtype=np.float32),
                             "model.layers.0.mlp.up_proj.weight": np.ones(4, np.float32)},
                            ExpertMeta(base_model="tiny", task="gsm8k", metrics=(Metric("gsm8k", "accuracy", 0.5),))))


def parses_or_refuses(data: bytes) -> None:
    """The property: a valid Expert, or a T2RegError whose exit code is 4."""
    try:
        expert = loads_expert(data, "fuzz.safetensors")
    except T2RegError as exc:
        assert exc.exit_code == 4, f"{type(exc).__name__} with exit code {exc.exit_code}: {exc}"
        return
    assert isinstance(expert, Expert) and expert.vectors


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(VALID) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(VALID)), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(VALID)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(VALID) - 1), st.just(0)),
)


def _mutate(data: bytes, steps) -> bytes:
    buf = bytearray(data)
    for kind, at, value in steps:
        at = min(at, len(buf) - 1) if kind in ("flip", "delete") else min(at, len(buf))
        if not buf and kind in ("flip", "delete"):
            continue
        if kind == "flip":
            buf[at] ^= value
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = bytes([value])
        else:
            del buf[at]
    return bytes(buf)


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=8))
def test_byte_mutations_of_a_valid_file(steps):
    parses_or_refuses(_mutate(VALID, steps))


# JSON of any shape: what a hostile header can hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = ["format", "format_version", "base_model", "parametrization", "renormalize", "task", "provenance", "metrics",
        "architecture", "created_by", "base_model_revision"]


def _file(header: dict, data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + data


@st.composite
def hostile_files(draw) -> bytes:
    """A header close to valid: real metadata keys with mutated values, tensor entries with mutated fields."""
    meta = dict(ExpertMeta(base_model="tiny", task="gsm8k").to_header())
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            meta.pop(key, None)
        elif choice == 1:
            meta[key] = draw(json_values)  # not a string: refused
        else:
            meta[key] = json.dumps(draw(json_values))  # a string holding any JSON
    count = draw(st.integers(0, 3))
    data = b"".join(np.ones(4, np.float32).tobytes() for _ in range(count))
    header: dict = {} if draw(st.booleans()) and not count else {"__metadata__": meta}
    for i in range(count):
        entry = {"dtype": "F32", "shape": [4], "data_offsets": [16 * i, 16 * i + 16]}
        for field in draw(st.lists(st.sampled_from(["dtype", "shape", "data_offsets"]), max_size=2)):
            entry[field] = draw(json_values)
        header[draw(st.text(min_size=1, max_size=10)) + str(i)] = entry if draw(st.integers(0, 9)) else draw(json_values)
    return _file(header, data[: draw(st.integers(0, len(data)))] if draw(st.integers(0, 4)) == 0 else data)


@FUZZ
@given(hostile_files())
def test_structured_mutations_of_the_header(data):
    parses_or_refuses(data)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    parses_or_refuses(data)
