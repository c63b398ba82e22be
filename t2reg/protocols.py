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

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from t2reg.errors import InvalidInputError
from t2reg.expert_file import Metric

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
    def from_dict(cls, data: dict[str, Any]) -> "Protocol":
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


def describe_spec(spec: dict[str, Any]) -> str:
    """A stored protocol's spec for people (legacy and hand-reported ones carry a note instead)."""
    if spec.get("legacy") or spec.get("reported"):
        return str(spec.get("note", ""))
    return Protocol.from_dict(spec).describe()


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
