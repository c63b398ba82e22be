"""Tasks: registered entries that say how to load, prompt, extract and score.

Register new ones with :func:`register_task`. Scoring modes: ``generate``
(greedy generation, then the task's checker) and, for multiple choice,
``choice`` (log-likelihood of each option letter after the prompt: one
forward pass per question, no generation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from t2reg.adaptation import answers
from t2reg.adaptation import datasets as ds
from t2reg.adaptation.datasets import LETTERS, Example
from t2reg.adaptation.sandbox import Limits, run_program
from t2reg.errors import InvalidInputError, NotFoundError

CATEGORIES = ("code", "math", "reasoning", "other")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Task:
    name: str
    category: str
    loader: Callable[[Path | None, str], list[Example]]
    prompt: Callable[[Example], str]
    check: Callable[[Example, str], bool]
    metric: str = "accuracy"
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    multiple_choice: bool = False
    shot_split: str = "train"
    description: str = ""
    extra: dict = field(default_factory=dict)

    def examples(self, split: str, data_dir: Path | None = None) -> list[Example]:
        if split not in SPLITS:
            raise InvalidInputError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return self.loader(data_dir, split)

    def shots(self, k: int, seed: int, data_dir: Path | None = None) -> list[Example]:
        """``k`` seeded examples from the shot pool, which never overlaps the test split."""
        import random

        pool = self.loader(data_dir, self.shot_split)
        if k > len(pool):
            raise InvalidInputError(f"{self.name}: asked for {k} shots, the pool has {len(pool)}")
        return random.Random(seed).sample(pool, k)


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.category not in CATEGORIES:
        raise InvalidInputError(f"task {task.name!r}: category must be one of {CATEGORIES}")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise NotFoundError(f"unknown task {name!r}; registered: {', '.join(sorted(_TASKS))}") from None


def all_tasks() -> list[Task]:
    return [_TASKS[n] for n in sorted(_TASKS)]


# -- prompts and checkers -----------------------------------------------------

def _gsm8k_prompt(ex: Example) -> str:
    return (f"Solve the following math problem step by step. End with the final answer as '#### <number>'.\n\n"
            f"{ex.question}")


def _gsm8k_check(ex: Example, output: str) -> bool:
    return answers.numbers_match(answers.final_number(output), answers.parse_number(ex.answer))


def choice_prompt(ex: Example) -> str:
    options = "\n".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(ex.choices))
    return (f"Answer the following multiple-choice question. End with 'The answer is (X)' where X is the letter.\n\n"
            f"{ex.question}\n{options}")


def _choice_check(ex: Example, output: str) -> bool:
    # Unparseable output is wrong, never a guess.
    return answers.choice_letter(output, LETTERS[: len(ex.choices)]) == ex.answer


def _math_prompt(ex: Example) -> str:
    return f"Solve the following problem. Put the final answer in \\boxed{{}}.\n\n{ex.question}"


def _math_check(ex: Example, output: str) -> bool:
    predicted = answers.normalise_math(answers.last_boxed(output))
    return predicted is not None and predicted == answers.normalise_math(ex.answer)


def _mbpp_prompt(ex: Example) -> str:
    return (f"You are an expert Python programmer. {ex.question}\nYour code should pass these tests:\n"
            f"{ex.entry_point}\nWrite the code in a ```python block.")


def _humaneval_prompt(ex: Example) -> str:
    return f"Complete the following Python function. Write the whole function in a ```python block.\n\n```python\n{ex.question}```"


def code_check(limits: Limits = Limits()) -> Callable[[Example, str], bool]:
    def check(ex: Example, output: str) -> bool:
        code = answers.extract_code(output)
        if ex.id.startswith("HumanEval") and f"def {ex.entry_point}" not in code:
            code = ex.question + code  # a bare body completes the prompt's signature
        return run_program(f"{code}\n\n{ex.tests}", limits).passed

    return check


for _task in [
    Task("gsm8k", "math", ds.gsm8k, _gsm8k_prompt, _gsm8k_check, max_new_tokens=320,
         description="Grade-school math word problems; numeric final answer."),
    Task("math", "math", ds.math, _math_prompt, _math_check, max_new_tokens=512, shot_split="shots",
         description="MATH competition problems (test set); \\boxed{} answer."),
    Task("arc-easy", "reasoning", ds.arc("easy"), choice_prompt, _choice_check, max_new_tokens=64,
         multiple_choice=True, description="AI2 ARC Easy; multiple choice."),
    Task("arc-challenge", "reasoning", ds.arc("challenge"), choice_prompt, _choice_check, max_new_tokens=64,
         multiple_choice=True, description="AI2 ARC Challenge; multiple choice."),
    Task("mbpp", "code", ds.mbpp, _mbpp_prompt, code_check(), max_new_tokens=384, shot_split="shots",
         description="Mostly Basic Python Problems; run against the tests."),
    Task("humaneval", "code", ds.humaneval, _humaneval_prompt, code_check(), max_new_tokens=384, shot_split="shots",
         description="HumanEval; run against the tests."),
]:
    register_task(_task)

# Built from the tasks above, so registered after them.
from t2reg.adaptation import dispatch_task  # noqa: E402,F401 - registration on import
