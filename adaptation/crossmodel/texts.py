"""The unlabeled text a data-driven transfer learns its correspondence from.

Either a task's questions (``--texts TASK[:SPLIT]``, the split's prompts, never
its answers) or a file of the user's (``--texts-file``, UTF-8, one text per
line, or JSONL with a ``text`` field). Either way a seeded sample of ``n``, and
an identity (source, n, seed, sha256 of exactly the texts used) that the
lineage row records, so a transfer can be reproduced and is reused only for the
same texts.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2reg.adaptation.tasks import Example, Task, get_task, sample
from t2reg.adaptation.tasks.base import SPLITS
from t2reg.errors import InvalidInputError, NotFoundError

MAX_FILE_BYTES = 256 * 2**20  # a texts file is read whole: refuse what would not fit a sane budget


@dataclass(frozen=True)
class Texts:
    """A seeded sample of texts and what identifies it."""

    source: str  # "task:arc-easy:train" or "file:NAME"
    items: tuple[str, ...]
    seed: int

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for text in self.items:
            digest.update(text.encode("utf-8") + b"\0")
        return digest.hexdigest()

    def identity(self) -> dict[str, Any]:
        return {"texts": self.source, "n_texts": len(self.items), "texts_seed": self.seed, "texts_sha256": self.sha256}


def parse_texts_option(value: str) -> tuple[Task, str]:
    """``TASK`` or ``TASK:SPLIT`` (default split ``train``)."""
    name, _, split = value.partition(":")
    task = get_task(name)
    split = split or "train"
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r} in {{texts}}; choose from {', '.join(SPLITS)}",
                                options=["texts"])
    return task, split


def stems(task: Task, split: str, n: int, seed: int, data_dir: Path | None) -> list[Example]:
    """A seeded sample of a multiple-choice split with every answer blanked: a data-driven transfer never
    sees a label (a test that scrambles them checks it)."""
    if not task.multiple_choice:
        raise InvalidInputError(f"{task.name} is not multiple choice; this transfer method needs multiple-choice "
                                "questions (arc-easy, arc-challenge)")
    drawn = sample(task.examples(split, data_dir), n, seed)
    return [Example(ex.id, ex.question, "", ex.choices) for ex in drawn]


def task_texts(task: Task, split: str, n: int, seed: int, data_dir: Path | None) -> Texts:
    """Each sampled question's prompt continued by one of its options, picked by the seed (not the answer):
    the text the expert acts on when an option is scored."""
    rng = random.Random(f"texts:{seed}")
    items = []
    for ex in sample(task.examples(split, data_dir), n, seed):
        if task.multiple_choice:
            items.append(f"{task.cloze_prompt(ex)} {ex.choices[rng.randrange(len(ex.choices))]}")
        else:
            items.append(task.prompt(ex))
    return Texts(f"task:{task.name}:{split}", tuple(items), seed)


def file_texts(path: str, n: int, seed: int) -> Texts:
    file = Path(path).expanduser()
    if not file.is_file():
        raise NotFoundError(f"texts file {path} not found")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInputError(f"texts file {path} is larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        raw = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInputError(f"texts file {path} is not UTF-8 (byte {err.start})") from None
    items = [_jsonl_text(line, path, i) if file.suffix == ".jsonl" else line
             for i, line in enumerate(raw.splitlines(), 1) if line.strip()]
    if not items:
        raise InvalidInputError(f"texts file {path} holds no text")
    chosen = items if n >= len(items) else [items[i] for i in sorted(random.Random(f"texts:{seed}").sample(
        range(len(items)), n))]
    return Texts(f"file:{file.name}", tuple(chosen), seed)


def _jsonl_text(line: str, path: str, number: int) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        raise InvalidInputError(f"{path} line {number} is not JSON") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise InvalidInputError(f"{path} line {number} has no string field 'text'")
    return row["text"]
