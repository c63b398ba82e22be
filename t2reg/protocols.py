"""Evaluation protocols: what a score was measured on and how.

Two scores compare only when they were measured the same way: the same task,
split, scoring mode, prompt, shots, sample (seed and size) and generation
limits. A :class:`Protocol` holds exactly that; its canonical JSON hashes to a
short id, so equal protocols get equal ids on every machine. Scores recorded
before protocols existed, or typed in by hand, belong to a per-task
``legacy`` or ``reported`` protocol, and Gemma scores taken without its
``<bos>`` to a ``nobos`` one; they are only ranked among themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from t2reg.errors import InvalidInputError
from t2reg.expert_file import Metric
from t2reg.specs import INT_MAX

FULL = "full"  # n of a protocol that scores the whole split
FLOAT32 = "float32"  # the arithmetic every score was measured in before dtypes were recorded


@dataclass(frozen=True)
class Protocol:
    """How a score was measured. ``n`` is the sample size, or ``"full"`` for the whole split."""

    task: str
    split: str
    mode: str  # cloze | letter | generate
    prompt_version: str
    n: int | str = FULL
    sample_seed: int | None = None  # None with n == "full"
    shots: int = 0  # worked examples in the prompt
    max_new_tokens: int | None = None  # generation only
    permute: int = 1  # letter mode: cyclic rotations of the options
    routing: str | None = None  # two-pass runs: the first pass's strategy (each question answered by its expert)
    dtype: str = FLOAT32  # weights and activations (bfloat16 scores never pair or rank with float32 ones)

    def __post_init__(self) -> None:
        if (self.n == FULL) != (self.sample_seed is None):
            raise InvalidInputError("a protocol samples (n and a seed) or scores the full split (neither)")

    def fields(self) -> dict[str, Any]:
        """What defines the protocol. ``dtype`` appears only when it is not float32, so every protocol
        recorded before dtypes were keeps its id and its stored spec."""
        data = asdict(self)
        if data["dtype"] == FLOAT32:
            del data["dtype"]
        return data

    def canonical(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.fields()}

    @classmethod
    def from_dict(cls, data: Any) -> "Protocol":
        """The protocol a stored or bundled spec describes (its ``id`` key, if any, is not checked here), or an
        :class:`InvalidInputError` naming the first field that is missing, unknown or of the wrong kind."""
        if not isinstance(data, dict):
            raise InvalidInputError("a protocol spec must be an object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields) - {"id"})
        if unknown:
            raise InvalidInputError(f"a protocol spec has no field {unknown[0][:40]!r}")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise InvalidInputError(f"a protocol spec needs {missing[0]!r}")
        for name, value in data.items():
            if name != "id" and not _FIELD_KINDS[name](value):
                raise InvalidInputError(f"protocol field {name!r} is {_FIELD_WORDS[name]}, not {str(value)[:40]!r}")
        return cls(**{k: v for k, v in data.items() if k != "id"})

    def describe(self) -> str:
        """One line for people: ``arc-easy/test, cloze (arc-cloze-v1), seeded sample of 100 (seed 0)``."""
        sample = "the full split" if self.n == FULL else f"a seeded sample of {self.n} (seed {self.sample_seed})"
        extra = f", {self.permute} rotations" if self.permute > 1 else ""
        extra += f", {self.max_new_tokens} new tokens" if self.max_new_tokens else ""
        extra += f", {self.shots} shots" if self.shots else ""
        extra += f", two-pass {self.routing} routing" if self.routing else ""
        extra += f", in {self.dtype}" if self.dtype != FLOAT32 else ""
        return f"{self.task}/{self.split}, {self.mode} ({self.prompt_version}), {sample}{extra}"


def _whole(low: int, optional: bool = False) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if value is None:
            return optional
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= INT_MAX
    return check


def _text(optional: bool = False) -> Callable[[Any], bool]:
    return lambda value: (value is None and optional) or (isinstance(value, str) and 0 < len(value) <= 128)


_REQUIRED = ("task", "split", "mode", "prompt_version")
# What each field may hold: what t2reg writes (a 1e30 or "1e999" sample size is nobody's protocol).
_FIELD_KINDS: dict[str, Callable[[Any], bool]] = {
    "task": _text(), "split": _text(), "mode": _text(), "prompt_version": _text(),
    "n": lambda value: value == FULL or _whole(1)(value), "sample_seed": _whole(-INT_MAX, optional=True),
    "shots": _whole(0), "max_new_tokens": _whole(1, optional=True), "permute": _whole(1),
    "routing": _text(optional=True), "dtype": _text(),
}
_FIELD_WORDS = {**{k: "text of 1 to 128 characters" for k in ("task", "split", "mode", "prompt_version")},
                "n": f"'{FULL}' or a whole number from 1 to {INT_MAX}",
                "sample_seed": f"null or a whole number within ±{INT_MAX}", "shots": f"a whole number from 0 to {INT_MAX}",
                "max_new_tokens": f"null or a whole number from 1 to {INT_MAX}",
                "permute": f"a whole number from 1 to {INT_MAX}", "routing": "null or text of 1 to 128 characters",
                "dtype": "text of 1 to 128 characters"}


def describe_spec(spec: Any) -> str:
    """A stored protocol's spec for people (legacy and hand-reported ones carry a note instead). Never fails:
    a spec this t2reg cannot read (another tool wrote it, or an unchecked import) says so."""
    if isinstance(spec, dict) and (spec.get("legacy") or spec.get("reported")):
        return str(spec.get("note", ""))[:500]
    try:
        return Protocol.from_dict(spec).describe()
    except InvalidInputError as exc:
        return f"(a spec this t2reg cannot read: {exc})"


def legacy_id(task: str) -> str:
    """The protocol of a task's scores recorded before protocols existed (letter scoring, first-N rows)."""
    return f"legacy:{task}"


def reported_id(task: str) -> str:
    """The protocol of a task's scores recorded by hand (``publish --metric``, ``record``): unknown."""
    return f"reported:{task}"


# Until then t2reg scored the families that need <bos> (Gemma 2 and 3) without it: a crippled model.
BOS_FIX_LANDED = datetime(2026, 11, 29, 18, 0, 1, tzinfo=timezone.utc)
NO_BOS_NOTE = ("measured without the <bos> this model family needs (before 2026-11-29 18:00 UTC): the scores "
               "describe a crippled model; the spec it was measured under is in 'measured_as'")


NO_BOS_PREFIX = "nobos:"


def without_bos_id(protocol_id: str) -> str:
    """Where scores taken under ``protocol_id`` before :data:`BOS_FIX_LANDED`, of a family that needs
    ``<bos>``, are kept (migration 0007; bundles from older registries on import): they rank only among
    themselves."""
    return f"{NO_BOS_PREFIX}{protocol_id}"


def without_bos_spec(task: str, measured_as: dict[str, Any]) -> dict[str, Any]:
    """The spec of :func:`without_bos_id`'s protocol: a note, and the spec the scores were measured under."""
    return {"task": task, "legacy": True, "note": NO_BOS_NOTE, "measured_as": measured_as}


@dataclass(frozen=True)
class Measurement:
    """One run's scores, the protocol they were measured under (None: unknown, typed in by hand) and its
    per-question results (:mod:`t2reg.question_results` bytes), as the registry records them together."""

    metrics: tuple[Metric, ...]
    protocol: Protocol | None = None
    results: bytes | None = None
