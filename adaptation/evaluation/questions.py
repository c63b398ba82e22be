"""The questions a score is measured on: a task's split, whole or as a seeded random sample.

Drawing them here, in one place, is what lets two conditions be paired: the
same task, split, size and seed give the same questions, and the protocol the
score is recorded under (:meth:`Questions.protocol`) says exactly which.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from t2reg.adaptation.tasks import Example, Mode, Task, sample
from t2reg.errors import InvalidInputError
from t2reg.protocols import FLOAT32, FULL, Protocol

SAMPLE_SEED = 0  # the default seed of every sample, so default runs pair with each other


@dataclass(frozen=True)
class Questions:
    task: Task
    split: str
    examples: list[Example]
    n: int | str  # the sample size, or FULL
    seed: int | None  # the sample's seed; None for the full split

    @classmethod
    def draw(cls, task: Task, split: str, limit: int | None = None, seed: int = SAMPLE_SEED,
             data_dir: Path | None = None) -> "Questions":
        """``limit`` questions of ``split`` drawn with ``seed``, or the whole split without a limit (or with
        one at least its size)."""
        if limit is not None and limit < 1:
            raise InvalidInputError("{limit} must be at least 1", options=["limit"])
        everything = task.examples(split, data_dir)
        if limit is None or limit >= len(everything):
            return cls(task, split, everything, FULL, None)
        return cls(task, split, sample(everything, limit, seed), limit, seed)

    def protocol(self, mode: Mode, permute: int = 1, dtype: str = FLOAT32) -> Protocol:
        """The protocol of these questions scored in ``mode`` by a model computing in ``dtype``."""
        return Protocol(self.task.name, self.split, str(mode), self.task.prompt_version, n=self.n,
                        sample_seed=self.seed, max_new_tokens=self.task.max_new_tokens if mode == Mode.GENERATE
                        else None, permute=permute, dtype=dtype)

    def with_task(self, task: Task) -> "Questions":
        """The same questions under a task with other settings (e.g. a generation budget)."""
        return dataclasses.replace(self, task=task)
