import json
import struct

import numpy as np
import pytest

from t2reg.errors import ExpertFileError, InvalidInputError
from t2reg.expert_file import (
    Expert,
    ExpertMeta,
    Metric,
    check_against_model,
    dumps_expert,
    loads_expert,
    read_expert,
    write_expert,
)
from safetensors.numpy import save as st_save


def _expert(**meta) -> Expert:
    vectors = {"model.layers.0.mlp.down_proj.weight": np.linspace(0.5, 1.5, 8, dtype=np.float32)}
    return Expert(vectors, ExpertMeta(base_model="tiny", **meta))


def _raw(tensors, metadata) -> bytes:
    return st_save(tensors, metadata=metadata)


GOOD_META = ExpertMeta(base_model="tiny").to_header()


def test_round_trip_keeps_vectors_and_metadata(tmp_path):
    metrics = (Metric("gsm8k", "accuracy", 0.79, "test", 1319),)
    expert = _expert(task="gsm8k", metrics=metrics, provenance={"source": "transferred", "from": "x:1"})
    path = write_expert(expert, tmp_path / "e.safetensors")
    back = read_expert(path)
    assert back.meta == expert.meta
    assert back.vectors.keys() == expert.vectors.keys()
    np.testing.assert_array_equal(back.vectors["model.layers.0.mlp.down_proj.weight"],
                                  expert.vectors["model.layers.0.mlp.down_proj.weight"])
    assert back.n_params == 8


def test_header_holds_only_strings_with_json_for_nested_values():
    header = _expert(metrics=(Metric("arc", "accuracy", 0.5),)).meta.to_header()
    assert all(isinstance(v, str) for v in header.values())
    assert header["format"] == "t2reg.expert" and header["format_version"] == "1"
    assert json.loads(header["metrics"])[0]["value"] == 0.5
    assert json.loads(header["provenance"]) == {"source": "native"}


def _truncated() -> bytes:
    return dumps_expert(_expert())[:-5]


def _header_too_long() -> bytes:
    data = dumps_expert(_expert())
    return struct.pack("<Q", len(data) * 10) + data[8:]


def _with_meta(**changes) -> bytes:
    meta = {**GOOD_META, **changes}
    meta = {k: v for k, v in meta.items() if v is not None}
    return _raw({"w": np.ones(4, np.float32)}, meta)


def _non_string_metadata() -> bytes:
    data = dumps_expert(_expert())
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"]["format_version"] = 1
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + data[8 + size :]


def _header(header: dict | str) -> bytes:
    """A file whose JSON header is ``header`` (a dict, or raw JSON text) followed by 32 bytes of data."""
    blob = (header if isinstance(header, str) else json.dumps(header)).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + bytes(32)


def _entry(**changes) -> bytes:
    entry = {"dtype": "F32", "shape": [8], "data_offsets": [0, 32], **changes}
    return _header({"__metadata__": GOOD_META, "w": entry})


BAD_FILES = {
    "not safetensors": (lambda: b"hello, I am a text file with some words", "not a safetensors file"),
    "empty": (lambda: b"", "not a safetensors file"),
    "truncated": (_truncated, "truncated"),
    "header longer than file": (_header_too_long, "header claims"),
    "non-string metadata": (_non_string_metadata, "must be strings"),
    "missing format": (lambda: _with_meta(format=None), "lacks 'format'"),
    "wrong format": (lambda: _with_meta(format="other"), "expected 't2reg.expert'"),
    "unknown format_version": (lambda: _with_meta(format_version="2"), "unknown format_version '2'"),
    "bad renormalize": (lambda: _with_meta(renormalize="spectral"), "renormalize"),
    "bad provenance json": (lambda: _with_meta(provenance="{"), "not valid JSON"),
    "tensor not 1-D": (lambda: _raw({"w": np.ones((2, 2), np.float32)}, GOOD_META), "1-D"),
    "integer dtype": (lambda: _raw({"w": np.ones(4, np.int32)}, GOOD_META), "I32"),
    "float64": (lambda: _raw({"w": np.ones(4, np.float64)}, GOOD_META), "float32"),
    "NaN": (lambda: _raw({"w": np.array([1, np.nan], np.float32)}, GOOD_META), "NaN or Inf"),
    "Inf": (lambda: _raw({"w": np.array([1, np.inf], np.float32)}, GOOD_META), "NaN or Inf"),
    "no tensors": (lambda: _raw({}, GOOD_META), "no tensors"),
    "metric without value": (lambda: _with_meta(metrics='[{"task": "a", "metric": "b"}]'), "finite value"),
    # found by an adversarial user: each of these used to end in "internal error" (exit 1)
    "deeply nested header": (lambda: _header("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    "deeply nested provenance": (lambda: _with_meta(provenance="[" * 100_000 + "]" * 100_000), "not valid JSON"),
    "shape is text": (lambda: _entry(shape="8"), "SVF vectors are 1-D"),
    "shape of floats": (lambda: _entry(shape=[8.0]), "SVF vectors are 1-D"),
    "offsets of text": (lambda: _entry(data_offsets=["0", "32"]), "malformed header entry"),
    "offsets reversed": (lambda: _entry(data_offsets=[32, 0]), "data offsets"),
    "offsets disagree with shape": (lambda: _entry(shape=[4]), "not 4 x 4"),
    "dtype is a list": (lambda: _entry(dtype=["F32"]), "format v1 stores float32"),
    "entry is a list": (lambda: _header({"__metadata__": GOOD_META, "w": [1, 2]}), "malformed header entry"),
    "metadata is a list": (lambda: _header({"__metadata__": ["x"], "w": {}}), "not a JSON object"),
    "metric n of 1e400": (lambda: _with_meta(metrics='[{"task": "a", "metric": "b", "value": 1, "n": 1e400}]'),
                          "n must be a whole number"),
    "metric split as a dict": (lambda: _with_meta(metrics='[{"task": "a", "metric": "b", "value": 1, "split": {}}]'),
                               "split must be a string"),
    "metric value as text": (lambda: _with_meta(metrics='[{"task": "a", "metric": "b", "value": "0.5"}]'),
                             "finite value"),
    "metrics not a list of objects": (lambda: _with_meta(metrics="[1]"), "not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_refused_with_a_message_naming_the_problem(case):
    build, words = BAD_FILES[case]
    with pytest.raises(ExpertFileError) as info:
        loads_expert(build(), "bad.safetensors")
    assert words in str(info.value)
    assert str(info.value).startswith("bad.safetensors:")
    assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidInputError)


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ExpertFileError, match="no such file"):
        read_expert(tmp_path / "nope.safetensors")


def test_writer_refuses_nan_so_bad_files_are_never_written(tmp_path):
    expert = _expert()
    expert.vectors["model.layers.0.mlp.down_proj.weight"][0] = np.nan
    with pytest.raises(ExpertFileError, match="NaN"):
        write_expert(expert, tmp_path / "e.safetensors")
    assert not list(tmp_path.iterdir())


def test_check_against_model_names_unknown_keys_and_wrong_lengths():
    expert = _expert()
    check_against_model(expert, {"model.layers.0.mlp.down_proj.weight": 8}, "tiny")
    with pytest.raises(ExpertFileError, match="has length 8, but that matrix of 'tiny' has rank 16"):
        check_against_model(expert, {"model.layers.0.mlp.down_proj.weight": 16}, "tiny")
    with pytest.raises(ExpertFileError, match="is not an adaptable matrix of model 'tiny'"):
        check_against_model(expert, {"model.layers.1.mlp.down_proj.weight": 8}, "tiny")


def test_serialisation_is_deterministic_and_readable_by_safetensors():
    import subprocess
    import sys


    code = (
        "import sys, numpy as np; from t2reg.expert_file import *;"
        "e = Expert({'b': np.arange(3, dtype=np.float32), 'a': np.ones(2, np.float32)},"
        " ExpertMeta(base_model='m', task='t', metrics=(Metric('t', 'acc', 0.5),)));"
        "sys.stdout.buffer.write(dumps_expert(e))"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout for _ in range(3)}
    assert len(runs) == 1  # hash seeds differ between processes; the bytes must not
    data = runs.pop()
    back = loads_expert(data)
    assert back.meta.task == "t" and back.vectors["b"].tolist() == [0.0, 1.0, 2.0]


def test_files_written_by_safetensors_itself_are_accepted():
    data = _raw({"model.layers.0.mlp.down_proj.weight": np.ones(8, np.float32)}, GOOD_META)
    assert loads_expert(data).n_params == 8
