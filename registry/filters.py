"""The expert filter language of ``--pool`` and ``list --where``.

A filter is comma-separated clauses, all of which must hold: ``key=value`` or
``key in (a,b,...)`` over ``model``, ``task``, ``source``, ``name`` and
``tag.KEY``. Example: ``model=mistral-7b,task in (gsm8k,mbpp),tag.reviewed=yes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from t2reg.errors import InvalidInputError, shown

KEYS = ("model", "task", "source", "name")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CLAUSE = re.compile(r"\s*(?P<key>[A-Za-z][\w.-]*)\s*(?:=\s*(?P<value>[^=()]*?)|\s+in\s*\((?P<values>[^()]*)\))\s*")


@dataclass(frozen=True)
class Clause:
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Filter:
    text: str
    clauses: tuple[Clause, ...]


def parse_filter(text: str) -> Filter:
    """Parse a filter, naming the clause that is malformed."""
    clauses = tuple(_clause(part, text) for part in _split_top_level(text))
    if not clauses:
        raise InvalidInputError("empty filter: write e.g. model=mistral-7b,task in (gsm8k,mbpp)")
    return Filter(text, clauses)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidInputError(f"bad filter {shown(text)}: unbalanced ')'")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise InvalidInputError(f"bad filter {shown(text)}: unclosed '('")
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _clause(part: str, text: str) -> Clause:
    match = _CLAUSE.fullmatch(part)
    if not match:
        raise InvalidInputError(f"bad filter clause {shown(part.strip())} in {shown(text)}: use key=value or key in (a,b)")
    key = match.group("key")
    if key not in KEYS and not (key.startswith("tag.") and len(key) > 4):
        raise InvalidInputError(f"unknown filter key {shown(key)}; use {', '.join(KEYS)} or tag.KEY")
    raw = [match.group("value")] if match.group("values") is None else match.group("values").split(",")
    values = tuple(v.strip() for v in raw if v.strip())
    if not values:
        raise InvalidInputError(f"filter clause {shown(part.strip())} has no value")
    if any(_CONTROL.search(v) for v in values):  # no name or tag value holds one; PostgreSQL refuses NUL outright
        raise InvalidInputError(f"filter clause {shown(part.strip())} holds a control character")
    return Clause(key, values)
