"""What a task is, and the registry of tasks.

A :class:`Task` says how to load, prompt, extract and score; register new ones
with :func:`register_task`. Scoring modes (see :data:`MODES`): ``generate``
(greedy generation, then the task's checker) and, for multiple choice,
``cloze`` (each option's own text scored as the continuation of the question,
the lm-evaluation-harness convention, which small models can pass) and
``letter`` (the log-likelihood of each option letter after a lettered prompt,
which at 135M-270M parameters measures the model's letter prior more than its
knowledge). Each task declares its default mode.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from t2reg.adaptation.tasks.datasets import Example
from t2reg.errors import InvalidInputError
from t2reg.names import Names
from t2reg.enums import Word


class Category(Word):
    """The kind of expert a task needs: what two-pass dispatch routes by."""

    CODE = "code"
    MATH = "math"
    REASONING = "reasoning"
    OTHER = "other"


class Mode(Word):
    """How a task's answers are scored."""

    CLOZE = "cloze"
    LETTER = "letter"
    GENERATE = "generate"


CATEGORIES = Category.values()
SPLITS = ("train", "validation", "test")
CHOICE_MODES = (Mode.CLOZE, Mode.LETTER)


@dataclass(frozen=True)
class Task:
    name: str
    category: Category
    loader: Callable[[Path | None, str], list[Example]]
    prompt: Callable[[Example], str]
    check: Callable[[Example, str], bool]
    metric: str = "accuracy"
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    multiple_choice: bool = False
    shot_split: str = "train"
    description: str = ""
    default_mode: Mode = Mode.GENERATE
    cloze_prompt: Callable[[Example], str] | None = None  # multiple choice: the text every option continues
    extract: Callable[[str], str | None] | None = None  # generation: the answer read off an output
    prompt_version: str = "v1"  # bumped whenever a prompt changes, so old scores do not rank with new ones
    runs_code: bool = False  # its checker runs generated code in the sandbox

    @property
    def modes(self) -> tuple[Mode, ...]:
        return (Mode.CLOZE, Mode.LETTER, Mode.GENERATE) if self.multiple_choice else (Mode.GENERATE,)

    def ready(self) -> None:
        """Refuse now what would fail on the first example: code tasks need the sandbox's isolation."""
        if self.runs_code:
            from t2reg.adaptation.tasks.sandbox import require_isolation

            require_isolation()

    def examples(self, split: str, data_dir: Path | None = None) -> list[Example]:
        if split not in SPLITS:
            raise InvalidInputError(f"unknown {{split}} {split!r}; choose from {', '.join(SPLITS)}", options=["split"])
        return self.loader(data_dir, split)

    def shots(self, k: int, seed: int, data_dir: Path | None = None) -> list[Example]:
        """``k`` seeded examples from the shot pool, which never overlaps the test split."""
        pool = self.loader(data_dir, self.shot_split)
        if k > len(pool):
            raise InvalidInputError(f"{self.name}: asked for {k} {{shots}}, the pool has {len(pool)}", options=["shots"])
        return random.Random(seed).sample(pool, k)


TASKS: Names[Task] = Names("task")


def register_task(task: Task) -> Task:
    if task.category not in CATEGORIES:
        raise InvalidInputError(f"task {task.name!r}: category must be one of {', '.join(CATEGORIES)}")
    if task.default_mode not in task.modes or (task.multiple_choice and task.cloze_prompt is None):
        raise InvalidInputError(f"task {task.name!r}: a multiple-choice task needs a cloze prompt, and its default "
                                f"mode must be one of {', '.join(task.modes)}")
    return TASKS.add(task.name, task)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def all_tasks() -> list[Task]:
    return list(TASKS)
