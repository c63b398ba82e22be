"""Protocol ids: the arithmetic a score was measured in is part of its protocol, without moving the ids
of every float32 score recorded before dtypes were."""

import pytest

from t2reg.protocols import Protocol


def test_float32_protocols_keep_the_ids_and_specs_they_had_before_dtypes_were_recorded():
    # ids computed by t2reg before the dtype field existed (commit 9104b80), for scores already in registries
    sampled = Protocol("arc-easy", "test", "cloze", "arc-cloze-v1", n=500, sample_seed=0)
    assert sampled.id == "0a11efb0c61f"
    assert Protocol("gsm8k", "test", "generate", "gsm8k-v1", max_new_tokens=256).id == "40944a4ed16f"
    assert "dtype" not in sampled.to_dict() and "dtype" not in sampled.canonical()
    assert Protocol.from_dict(sampled.to_dict()) == sampled  # a stored spec without dtype reads as float32


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_another_dtype_is_another_protocol(dtype):
    float32 = Protocol("arc-easy", "test", "cloze", "arc-cloze-v1", n=500, sample_seed=0)
    narrow = Protocol("arc-easy", "test", "cloze", "arc-cloze-v1", n=500, sample_seed=0, dtype=dtype)
    assert narrow.id != float32.id and narrow.to_dict()["dtype"] == dtype
    assert Protocol.from_dict(narrow.to_dict()) == narrow and Protocol.from_dict(narrow.to_dict()).id == narrow.id
    assert narrow.describe() == float32.describe() + f", in {dtype}"
