"""The harness's value format, as written inside the sandbox (decoded back by :mod:`values`)."""

import collections
import enum
import json
import math

import pytest

from t2reg.adaptation.tasks.harness import MAX_DEPTH, dump, encode
from t2reg.adaptation.tasks.values import read_report


def _round_trip(value):
    line = dump({"v": encode(value)}).encode() + b"\n"
    return read_report(line, 1)[0]


class Colour(enum.IntEnum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**63, -(2**200), 1.5, -0.0, float("inf"), float("-inf"), 1e308, "", "héllo\ud800",
    b"\x00\xff", [1, [2, [3]]], (1, (2,)), (), {1, 2}, frozenset({(1, 2)}), {"a": [1], (1, 2): {3: None}},
    complex(1, -2), [set(), {}, []],
])
def test_plain_values_come_back_equal_and_of_the_same_type(value):
    back = _round_trip(value)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", ["tab\t quote\" back\\ é 😀 \ud800 \x00", 1e16, -0.0, 5e-324, 2**62, [[], {"k": ()}]])
def test_the_json_written_is_what_json_dumps_writes(value):
    assert dump(encode(value)) == json.dumps(encode(value), allow_nan=False, separators=(",", ":"))


def test_nan_comes_back_as_nan():
    assert math.isnan(_round_trip(float("nan")))


def test_subclasses_are_written_as_their_base_type():
    assert _round_trip(Point(1, 2)) == (1, 2) and type(_round_trip(Point(1, 2))) is tuple
    assert type(_round_trip(collections.Counter("aab"))) is dict
    assert type(_round_trip(collections.OrderedDict(a=1))) is dict
    assert _round_trip(Colour.RED) == 1 and type(_round_trip(Colour.RED)) is int
    assert _round_trip(bytearray(b"ab")) == b"ab"


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


@pytest.mark.parametrize("value", [AlwaysEqual(), object(), map(str, [1]), (x for x in ()), range(3), [AlwaysEqual()],
                                   {"k": AlwaysEqual()}, print])
def test_anything_else_cannot_be_written(value):
    with pytest.raises(TypeError, match="cannot be reported"):
        encode(value)


def test_nesting_is_capped():
    deep = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        encode(deep)
