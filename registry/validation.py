"""Validation of everything a user types: names, references, metrics, tags.

One place, so the CLI and the Python API refuse the same things with the same words.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from t2reg.errors import InvalidInputError, InvalidReferenceError, shown
from t2reg.expert_file import Metric
from t2reg.specs import INT_MAX
from t2reg.enums import Source

NAME_MAX = 128
MODEL_NAME_MAX = 200
REVISION_MAX = 100
# The one name pattern (experts, tasks, metrics, aliases, tag keys; model names are one or two of
# these joined by '/'). It cannot spell '.', '..', a '/', a control character or a space, so a name
# is always safe as one path component and prints as itself.
# Every pattern here is used with fullmatch, never match with '$': '$' also matches before a final newline,
# so "evil\n" would pass as a name.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NAME = re.compile(NAME_PATTERN)
_MODEL_NAME = re.compile(rf"{NAME_PATTERN}(?:/{NAME_PATTERN})?")
_REVISION = re.compile(rf"{NAME_PATTERN}(?:/{NAME_PATTERN})*")
_METRIC = re.compile(r"(?:(?P<task>[^:=\s]+):)?(?P<metric>[^:=\s]+)=(?P<value>.*)")
TASK_MAX = 100  # "reported:TASK" must fit a protocol id (128)
METRIC_MAX = 100
SPLIT_MAX = 50
SOURCE_MAX = 32  # who recorded a score: publish, record, eval, a bundle's word for it


def validate_name(name: str, what: str = "expert name", max_length: int = NAME_MAX) -> str:
    """Names are 1-128 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit (``max_length`` may be lower)."""
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be text, not {type(name).__name__}")
    if not name:
        raise InvalidInputError(f"{what} is empty")
    if len(name) > max_length:
        raise InvalidInputError(f"{what} {shown(name, 20)} is too long: at most {max_length} characters")
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"{what} {shown(name)} may hold only letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(no '/', ':', '@' or spaces)"
        )
    return name


def validate_model_name(name: str, what: str = "model name") -> str:
    """A model name: ``NAME`` or ``OWNER/NAME`` (a Hugging Face id), each part a name as above."""
    if not isinstance(name, str) or not name or len(name) > MODEL_NAME_MAX or not _MODEL_NAME.fullmatch(name):
        raise InvalidInputError(
            f"{what} {shown(name)} must be NAME or OWNER/NAME (at most {MODEL_NAME_MAX} characters), each part letters, "
            "digits, '.', '_' and '-' starting with a letter or digit"
        )
    return name


def validate_revision(revision: str | None) -> str:
    """A model revision: empty, or names joined by '/' (a commit hash, a branch, a tag)."""
    if not revision:
        return ""
    if len(revision) > REVISION_MAX or not _REVISION.fullmatch(revision):
        raise InvalidInputError(
            f"{{revision}} {shown(revision)} must be a commit hash, branch or tag: letters, digits, '.', '_', '-' and '/' "
            f"(at most {REVISION_MAX} characters)", options=["revision"])
    return revision


def path_slug(name: str) -> str:
    """A validated model name or revision as one path component: '/' becomes '--'."""
    return name.replace("/", "--")


def validate_task(task: str | None) -> str | None:
    """A task name (or None): a name of at most 100 characters."""
    return None if task is None else validate_name(task, "task", max_length=TASK_MAX)


def validate_count(value: int | None, what: str, minimum: int = 1) -> int | None:
    """An integer option (``n``, ``limit``, an id) within what the database stores, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{{{what}}} must be a whole number, not {shown(value)}", options=[what])
    if value < minimum:
        raise InvalidInputError(f"{{{what}}} must be at least {minimum}", options=[what])
    if value > INT_MAX:
        raise InvalidInputError(f"{{{what}}} must be at most {INT_MAX}", options=[what])
    return value


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
        raise InvalidReferenceError(f"bad reference {shown(text)}: use NAME, NAME:VERSION or NAME@ALIAS")
    if ":" in text:
        name, _, raw = text.partition(":")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= INT_MAX:
            raise InvalidReferenceError(f"bad reference {shown(text)}: the version must be a whole number from 1 to {INT_MAX}")
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
        raise InvalidReferenceError(f"bad reference {shown(text)}: {exc}") from None


def parse_metric(text: str, default_task: str | None = None, split: str | None = None, n: int | None = None) -> Metric:
    """Parse ``TASK:METRIC=VALUE`` (or ``METRIC=VALUE`` with a default task)."""
    match = _METRIC.fullmatch(text.strip())
    if not match:
        raise InvalidInputError(f"bad metric {shown(text)}: expected TASK:METRIC=VALUE, e.g. gsm8k:accuracy=0.79")
    task = match.group("task") or default_task
    if not task:
        raise InvalidInputError(f"metric {shown(text)} names no task and the expert has none: write TASK:METRIC=VALUE")
    raw = match.group("value").strip()
    if not raw:
        raise InvalidInputError(f"metric {shown(text)} has no value")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"metric {shown(text)}: {shown(raw)} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"metric {shown(text)}: the value must be finite")
    return check_metric(Metric(task, match.group("metric"), value, split, n))


_PROPORTION = re.compile(r"(?:acc|accuracy|exact_match)(?:[._-][A-Za-z0-9._-]*)?")


def is_proportion(metric: str) -> bool:
    """Whether ``metric`` names a share of questions answered right (``accuracy``, ``acc_norm``,
    ``accuracy_norm``, ``exact_match``...): such a score lies in [0, 1]."""
    return _PROPORTION.fullmatch(metric) is not None


def check_metric(metric: Metric) -> Metric:
    """One rule for every score, typed, read from a file or from a bundle: names, a finite value (in [0, 1] for
    a proportion, see :func:`is_proportion`), a split name, 1 <= n."""
    validate_task(metric.task)
    validate_name(metric.metric, "metric", max_length=METRIC_MAX)
    value = metric.value
    what = f"score {metric.task}:{metric.metric} = {shown(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{what}: the value must be a finite number")
    if is_proportion(metric.metric) and not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{what}: {metric.metric} is a proportion, from 0 to 1")
    if metric.split is not None:
        validate_name(metric.split, "split", max_length=SPLIT_MAX)
    validate_count(metric.n, "n")
    return metric


def check_text(value: str, what: str, max_length: int, newlines: bool = False) -> str:
    """Free text (a description, a tag value): bounded, and no control characters but newlines and tabs if allowed."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text, not {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is longer than {max_length} characters")
    allowed = "\t\n" if newlines else ""
    bad = next((c for c in value if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0) and c not in allowed), None)
    if bad is not None:
        raise InvalidInputError(f"{what} holds the control character {bad!r}")
    return value


# What the registry itself writes into a JSON column (lineage params, a protocol's spec) fits in these:
# a mixture's per-matrix weights are a few hundred numbers two levels down.
JSON_DEPTH_MAX = 8
JSON_BYTES_MAX = 256 << 10
JSON_KEY_MAX = 128


def check_json(value: Any, what: str) -> Any:
    """``value`` if it is JSON data as the registry stores it: objects with text keys, lists, text without
    control characters (but tabs and newlines), finite numbers, whole numbers within what every database keeps,
    true, false and null; at most :data:`JSON_DEPTH_MAX` levels and :data:`JSON_BYTES_MAX` bytes as JSON.

    Walked with a stack, not recursion: a structure nested 100,000 deep is refused, never a RecursionError.
    """
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > JSON_DEPTH_MAX:
            raise InvalidInputError(f"{what} is nested more than {JSON_DEPTH_MAX} levels deep")
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"{what} has a key that is not text")
                check_text(key, f"{what}: key {shown(key, 20)}", JSON_KEY_MAX)
                stack.append((inner, level + 1))
        elif isinstance(item, list):
            stack.extend((inner, level + 1) for inner in item)
        elif isinstance(item, str):
            check_text(item, f"{what}: a text value", JSON_BYTES_MAX, newlines=True)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > INT_MAX:
                raise InvalidInputError(f"{what} holds the whole number {shown(item, 20)}, beyond ±{INT_MAX}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(f"{what} holds {item}, not a finite number")
        else:
            raise InvalidInputError(f"{what} holds a {type(item).__name__}, which is not JSON")
    if len(json.dumps(value, allow_nan=False).encode("utf-8")) > JSON_BYTES_MAX:
        raise InvalidInputError(f"{what} is larger than {JSON_BYTES_MAX} bytes as JSON")
    return value


def readable_json(value: Any, what: str) -> Any:
    """A JSON column's stored ``value`` as read commands may print it: itself when :func:`check_json` takes it,
    else an object saying why it is not shown. A registry written before imports were checked this way (or by
    another tool) may hold anything; reading it must never fail."""
    try:
        return check_json(value, what)
    except InvalidInputError as exc:
        return {"unreadable": str(exc)}


def parse_tag(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInputError(f"bad tag {shown(text)}: expected KEY=VALUE")
    return check_tag(key.strip(), value)


def check_tag(key: str, value: str) -> tuple[str, str]:
    """A tag: a name as key, up to 500 characters of plain text as value."""
    validate_name(key, "tag key")
    return key, check_text(value, f"tag {key!r} value", 500)


def parse_sources(text: str | None) -> tuple[Source, ...]:
    """Parse a comma-separated list of sources (``native,transferred``)."""
    if not text:
        return ()
    return source_values(s.strip() for s in text.split(",") if s.strip())


def source_values(sources: Iterable[str]) -> tuple[Source, ...]:
    """Each of ``sources`` as a :class:`Source`, refusing unknown ones by name."""
    return tuple(Source.parse(s, "source") for s in sources)
