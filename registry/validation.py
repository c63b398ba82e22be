"""Validation of everything a user types: names, references, metrics, tags.

One place, so the CLI and the Python API refuse the same things with the same words.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from t2reg.errors import InvalidInputError, InvalidReferenceError
from t2reg.expert_file import Metric
from t2reg.vocabulary import Source

NAME_MAX = 128
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_METRIC = re.compile(r"^(?:(?P<task>[^:=\s]+):)?(?P<metric>[^:=\s]+)=(?P<value>.*)$")


def validate_name(name: str, what: str = "expert name") -> str:
    """Names are 1-128 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit."""
    if not name:
        raise InvalidInputError(f"{what} is empty")
    if len(name) > NAME_MAX:
        raise InvalidInputError(f"{what} {name[:20]!r}... is {len(name)} characters; at most {NAME_MAX}")
    if not _NAME.match(name):
        raise InvalidInputError(
            f"{what} {name!r} may hold only letters, digits, '.', '_' and '-' (no '/', ':', '@' or spaces)"
        )
    return name


@dataclass(frozen=True)
class Reference:
    """``NAME`` (latest live version), ``NAME:VERSION`` or ``NAME@ALIAS``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_reference(text: str) -> Reference:
    """Parse a reference, refusing anything ambiguous (``a:b:c``, ``x:0``, ``x@``)."""
    if text.count(":") + text.count("@") > 1:
        raise InvalidReferenceError(f"bad reference {text!r}: use NAME, NAME:VERSION or NAME@ALIAS")
    if ":" in text:
        name, _, raw = text.partition(":")
        if not raw.isdigit() or int(raw) < 1:
            raise InvalidReferenceError(f"bad reference {text!r}: the version must be a whole number from 1")
        return Reference(_ref_name(name, text), version=int(raw))
    if "@" in text:
        name, _, alias = text.partition("@")
        return Reference(_ref_name(name, text), alias=_ref_part(alias, text, "alias"))
    return Reference(_ref_name(text, text))


def _ref_name(name: str, text: str) -> str:
    return _ref_part(name, text, "expert name")


def _ref_part(part: str, text: str, what: str) -> str:
    try:
        return validate_name(part, what)
    except InvalidInputError as exc:
        raise InvalidReferenceError(f"bad reference {text!r}: {exc}") from None


def parse_metric(text: str, default_task: str | None = None, split: str | None = None, n: int | None = None) -> Metric:
    """Parse ``TASK:METRIC=VALUE`` (or ``METRIC=VALUE`` with a default task)."""
    match = _METRIC.match(text.strip())
    if not match:
        raise InvalidInputError(f"bad metric {text!r}: expected TASK:METRIC=VALUE, e.g. gsm8k:accuracy=0.79")
    task = match.group("task") or default_task
    if not task:
        raise InvalidInputError(f"metric {text!r} names no task and the expert has none: write TASK:METRIC=VALUE")
    raw = match.group("value").strip()
    if not raw:
        raise InvalidInputError(f"metric {text!r} has no value")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"metric {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"metric {text!r}: the value must be finite")
    if n is not None and n < 1:
        raise InvalidInputError(f"metric {text!r}: n must be at least 1")
    return Metric(validate_name(task, "task"), validate_name(match.group("metric"), "metric"), value, split, n)


def parse_tag(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInputError(f"bad tag {text!r}: expected KEY=VALUE")
    if len(value) > 500:
        raise InvalidInputError(f"tag {key!r}: the value is longer than 500 characters")
    return validate_name(key.strip(), "tag key"), value


def parse_sources(text: str | None) -> tuple[Source, ...]:
    """Parse a comma-separated list of sources (``native,transferred``)."""
    if not text:
        return ()
    return source_values(s.strip() for s in text.split(",") if s.strip())


def source_values(sources: Iterable[str]) -> tuple[Source, ...]:
    """Each of ``sources`` as a :class:`Source`, refusing unknown ones by name."""
    return tuple(Source.parse(s, "source") for s in sources)
