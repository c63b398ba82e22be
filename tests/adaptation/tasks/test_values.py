"""Reading reported values: strict, bounded; nothing a report holds runs or survives as an object."""

import json

import pytest

from t2reg.adaptation.tasks.harness import MAX_DEPTH
from t2reg.adaptation.tasks.values import MAX_HASHED, MAX_NODES, BadValue, Raised, read_report


def _line(body) -> bytes:
    return json.dumps(body).encode() + b"\n"


def test_a_report_is_one_value_or_one_failure_per_line():
    report = _line({"v": {"tuple": [1, {"set": ["a"]}]}}) + _line({"e": "raised ZeroDivisionError"})
    assert read_report(report, 2) == [(1, {"a"}), Raised("raised ZeroDivisionError")]


@pytest.mark.parametrize("report, count", [
    (b"", 1),  # nothing
    (_line({"v": 1}), 2),  # too few
    (_line({"v": 1}) * 3, 2),  # too many: extra claims are not ignored, the report is void
    (_line({"v": 1}).rstrip(b"\n"), 1),  # an unfinished line
])
def test_anything_but_exactly_one_line_per_value_is_refused(report, count):
    with pytest.raises(BadValue):
        read_report(report, count)


@pytest.mark.parametrize("line", [
    b'{"v": NaN}\n', b'{"v": Infinity}\n', b'[1]\n', b'{"v": 1, "e": "x"}\n', b'{"passed": true}\n',
    b'{"v": {"tuple": [1], "set": [2]}}\n', b'{"v": {"object": [1]}}\n', b'{"v": {"float": "1.5"}}\n',
    b'{"v": {"bytes": "abc"}}\n', b'{"v": {"int": "0x10"}}\n', b'{"v": {"set": [[1]]}}\n',
    b'{"v": {"dict": [[[1], 2]]}}\n', b'{"v": {"dict": [[1, 2, 3]]}}\n', b'{"v": {"complex": [1, 2]}}\n',
    b'{"e": 5}\n', b"not json\n", b'{"v": ' + b"9" * 5000 + b"}\n",
])
def test_malformed_values_are_refused(line):
    with pytest.raises(BadValue):
        read_report(line, 1)


def test_nesting_past_the_cap_is_refused_even_where_json_could_parse_it():
    deep = "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)
    with pytest.raises(BadValue, match="deeper"):
        read_report(b'{"v": ' + deep.encode() + b"}\n", 1)
    very_deep = "[" * 100_000 + "]" * 100_000  # deeper than the JSON parser's own recursion
    with pytest.raises(BadValue):
        read_report(b'{"v": ' + very_deep.encode() + b"}\n", 1)


def test_sizes_are_capped_across_the_whole_report():
    with pytest.raises(BadValue, match="values"):
        read_report(_line({"v": [0] * MAX_NODES}), 1)
    half = {"v": {"set": list(range(MAX_HASHED // 2 + 1))}}
    assert len(read_report(_line(half), 1)[0]) == MAX_HASHED // 2 + 1
    with pytest.raises(BadValue, match="set members"):
        read_report(_line(half) * 2, 2)


def test_colliding_integers_cannot_make_decoding_slow():
    # Multiples of 2**61 - 1 all hash to 0: a set of them is quadratic to build. The cap bounds it.
    colliding = [k * (2**61 - 1) for k in range(1, MAX_HASHED + 2)]
    body = {"v": {"set": [c if c < 2**63 else {"int": format(c, "x")} for c in colliding]}}
    with pytest.raises(BadValue, match="set members"):
        read_report(_line(body), 1)
