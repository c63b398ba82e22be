"""Per-question results of an evaluation: the file format kept beside every score.

Gzipped JSON lines, one object per question, at least ``id``, ``prediction``,
``answer``, ``correct`` and ``logprob`` (the log-probability of the right
answer). Written deterministically (sorted keys, no gzip timestamp), so equal
results are equal bytes and the content-addressed store keeps one copy. Read
with a cap on the decompressed size; nothing here ever unpickles.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.stats import constant_baseline

REQUIRED = ("id", "prediction", "answer", "correct", "logprob")
LETTERS = "ABCDE"  # the options' letters, in the order their scores are listed
MAX_BYTES = 256 << 20  # decompressed


def dumps_results(rows: Iterable[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    return buffer.getvalue()


def loads_results(data: bytes, origin: str = "results") -> list[dict[str, Any]]:
    """The rows, refusing a file that is not gzipped JSON lines of objects with the required keys."""
    try:
        inflater = zlib.decompressobj(wbits=31)  # gzip framing
        raw = inflater.decompress(data, MAX_BYTES)
        if inflater.unconsumed_tail:
            raise InvalidInputError(f"{origin}: per-question results larger than {MAX_BYTES} bytes uncompressed")
        lines = raw.decode("utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{origin}: not gzipped JSON lines ({type(exc).__name__})") from None
    for row in rows:
        if not isinstance(row, dict) or any(key not in row for key in REQUIRED):
            raise InvalidInputError(f"{origin}: every row needs {', '.join(REQUIRED)}")
    return rows


def is_multiple_choice(rows: Sequence[dict[str, Any]]) -> bool:
    """Rows of a multiple-choice run (each option scored), where a constant answer is a baseline to beat."""
    return any("option_logprobs" in row for row in rows)


@dataclass(frozen=True)
class ConstantAnswer:
    """Always giving the most common right answer: what a multiple-choice score must beat to mean anything."""

    answer: str
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def constant_answer(rows: Sequence[dict[str, Any]]) -> ConstantAnswer | None:
    """The most common right answer among ``rows`` and the accuracy of always giving it; None unless the rows
    are multiple choice (an open answer has no constant to give)."""
    if not rows or not is_multiple_choice(rows):
        return None
    answer, accuracy = constant_baseline([row["answer"] for row in rows])
    return ConstantAnswer(str(answer), accuracy)


def prediction_histogram(rows: Sequence[dict[str, Any]]) -> dict[str, int] | None:
    """How often each option was predicted, for multiple-choice rows (a skew here explains a score before the
    model's knowledge does)."""
    if not rows or not is_multiple_choice(rows):
        return None
    return dict(sorted(Counter(str(row["prediction"]) for row in rows).items()))


def normalised(values: Sequence[float]) -> np.ndarray:
    """Log-probabilities renormalised over a question's options (a log-softmax)."""
    v = np.asarray(values, dtype=np.float64)
    v = v - v.max()
    return v - np.log(np.exp(v).sum())


def choice_logprob(row: dict[str, Any]) -> float | None:
    """The right answer's log-probability among the question's options (its option score renormalised over
    the options), or None for a row without option scores.

    It rises only when the right option gains on the others: a change to the weights that lowers every
    option's likelihood together (a drift away from the pretrained text distribution) moves ``logprob`` but
    not this, so the two read side by side separate skill from drift.
    """
    scores = row.get("option_logprobs")
    answer = str(row["answer"])
    index = LETTERS.find(answer) if len(answer) == 1 else -1
    if not scores or not 0 <= index < len(scores):
        return None
    return float(normalised(scores)[index])
