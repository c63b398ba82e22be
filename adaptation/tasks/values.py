"""Reading the values a sandboxed run reports: strict, bounded, and nothing in them ever runs.

The format is written by :func:`harness.encode` (see :mod:`harness`): JSON plus
one-key tags for tuples, sets, frozensets, dicts, bytes, non-finite floats,
large integers and complex numbers. Decoding builds only builtin values of
those types, and refuses (:class:`BadValue`) anything else: unknown tags,
``NaN`` spelled as JSON, objects with several keys, nesting deeper than
:data:`harness.MAX_DEPTH`, more than :data:`MAX_NODES` values in a report, or
sets and dicts past :data:`MAX_HASHED` members in all (integers' hashes are
predictable, so a report could otherwise make every member collide and building
the sets take quadratic time). What comes out can be compared with ``==`` safely: builtin
equality on builtin data, no method of the program's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from t2reg.adaptation.tasks.harness import MAX_DEPTH

MAX_NODES = 200_000  # values in one report
MAX_HASHED = 8192  # set members and dict keys in one report
_HEX = re.compile(r"-?[0-9a-f]+")
_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


class BadValue(ValueError):
    """A report line that is not a value in the format."""


@dataclass(frozen=True)
class Raised:
    """A value step that raised, or whose value had no form in the format (the run's own words, for people)."""

    reason: str


class _Object(tuple):
    """A JSON object as its (key, value) pairs: keeps objects apart from arrays, and duplicate keys visible."""


def _no_constants(name: str) -> object:
    raise BadValue(f"{name} is not a value here (non-finite floats are tagged)")


def read_report(report: bytes, count: int) -> list[object]:
    """The ``count`` values (or :class:`Raised`) of a report, one per line; :class:`BadValue` unless the report
    is exactly that: ``count`` lines, each in the format, within the limits."""
    lines = report.split(b"\n")
    if lines[-1] != b"" or len(lines) - 1 != count:
        raise BadValue(f"{len(lines) - 1} report lines (or an unfinished one) where {count} were expected")
    decoder = _Decoder()
    return [_read_line(line, decoder) for line in lines[:-1]]


def _read_line(line: bytes, decoder: _Decoder) -> object:
    try:
        data = json.loads(line, object_pairs_hook=_Object, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, too deep
        raise BadValue(f"not JSON in the format: {str(exc)[:100]}") from None
    if not isinstance(data, _Object) or len(data) != 1:
        raise BadValue("a report line is one object with one key")
    ((key, body),) = data
    if key == "e" and isinstance(body, str):
        return Raised(body[:300])
    if key == "v":
        return decoder.value(body, 0)
    raise BadValue(f"unknown report line key {key!r}")


class _Decoder:
    def __init__(self) -> None:
        self.nodes = 0
        self.hashed = 0

    def value(self, data: object, depth: int) -> object:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise BadValue(f"more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise BadValue(f"nested deeper than {MAX_DEPTH}")
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if isinstance(data, list):
            return [self.value(item, depth + 1) for item in data]
        if isinstance(data, _Object) and len(data) == 1:
            ((tag, body),) = data
            return self.tagged(tag, body, depth)
        raise BadValue("an object in a value must be one tag")

    def tagged(self, tag: str, body: object, depth: int) -> object:
        if tag == "float" and isinstance(body, str) and body in _FLOATS:
            return _FLOATS[body]
        if tag in ("int", "bytes") and isinstance(body, str) and _HEX.fullmatch(body):
            if tag == "int":
                return int(body, 16)
            if not body.startswith("-") and len(body) % 2 == 0:
                return bytes.fromhex(body)
        if tag == "complex" and isinstance(body, list) and len(body) == 2:
            real, imag = (self.value(part, depth + 1) for part in body)
            if isinstance(real, float) and isinstance(imag, float):
                return complex(real, imag)
        if not isinstance(body, list):
            raise BadValue(f"tag {tag!r} with a {type(body).__name__}")
        if tag == "tuple":
            return tuple(self.value(item, depth + 1) for item in body)
        if tag in ("set", "frozenset"):
            members = [self.value(item, depth + 1) for item in body]
            self.hash(len(members))
            return _hashable(lambda: (set if tag == "set" else frozenset)(members))
        if tag == "dict" and all(isinstance(pair, list) and len(pair) == 2 for pair in body):
            pairs = [(self.value(k, depth + 1), self.value(v, depth + 1)) for k, v in body]
            self.hash(len(pairs))
            return _hashable(lambda: dict(pairs))
        raise BadValue(f"unknown tag {tag!r}, or a malformed body")

    def hash(self, count: int) -> None:
        self.hashed += count
        if self.hashed > MAX_HASHED:
            raise BadValue(f"more than {MAX_HASHED} set members and dict keys")


def _hashable(build):
    try:
        return build()
    except TypeError:  # a list as a member or key: no Python set or dict holds one
        raise BadValue("an unhashable member or key") from None
