"""The ``dispatch`` task: which category of expert a prompt needs (the paper's classification expert).

Each example is a prompt from another registered task, labelled with that
task's category; the options are the categories, so the task trains and scores
like any multiple-choice task (``t2reg train --task dispatch``). Sources are the
registered tasks with train/validation/test data (by default the ones with all
three splits: GSM8K, MBPP, ARC); categories with no source (e.g. ``other``)
stay as options, so the classifier can still answer them.
"""

from __future__ import annotations

import random
from pathlib import Path

from t2reg.adaptation.tasks.base import CATEGORIES, Category, Mode, Task, get_task, register_task
from t2reg.adaptation.tasks.builtin import choice_prompt
from t2reg.adaptation.tasks.datasets import LETTERS, SPLIT_SEED, Example
from t2reg.errors import InvalidInputError

SOURCE_TASKS = ("gsm8k", "mbpp", "arc-easy", "arc-challenge")
PER_SOURCE = {"train": 300, "validation": 60, "test": 100}


HINTS = {"code": "writing or fixing a program", "math": "a calculation or a math word problem",
         "reasoning": "commonsense or scientific reasoning, usually multiple choice", "other": "anything else"}


def dispatch_prompt(question: str, categories: tuple[str, ...] = CATEGORIES) -> str:
    """The first-pass question: which of ``categories`` (those of the pool's experts) this prompt belongs to."""
    names = ", ".join(f"'{c}'" for c in categories)
    hints = "".join(f"- {c}: {HINTS[c]}\n" for c in categories if c in HINTS)
    return (f"Analyze the given question and classify it into one of these categories: {names}.\n"
            f"{hints}\nQuestion:\n{question}")


def _load(root: Path | None, split: str) -> list[Example]:
    examples = []
    for source in SOURCE_TASKS:
        task = get_task(source)
        rows = task.examples(split, root)
        random.Random(f"{SPLIT_SEED}-{source}-{split}").shuffle(rows)
        label = LETTERS[CATEGORIES.index(task.category)]
        for ex in rows[: PER_SOURCE[split]]:
            examples.append(Example(f"dispatch-{source}-{ex.id}", task.prompt(ex), label, CATEGORIES))
    if not examples:
        raise InvalidInputError("dispatch: no source task has data for this split")
    random.Random(f"{SPLIT_SEED}-dispatch-{split}").shuffle(examples)
    return examples


def _prompt(ex: Example) -> str:
    return choice_prompt(Example(ex.id, dispatch_prompt(ex.question), ex.answer, ex.choices))


def _cloze_prompt(ex: Example) -> str:
    return f"{dispatch_prompt(ex.question)}\nCategory:"  # each category's name continues it


register_task(Task("dispatch", Category.OTHER, _load, _prompt, get_task("arc-easy").check, max_new_tokens=16,
                   multiple_choice=True, description="Which expert category a prompt needs (classification expert).",
                   default_mode=Mode.CLOZE, cloze_prompt=_cloze_prompt))
