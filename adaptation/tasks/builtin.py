"""The tasks t2reg ships: GSM8K, MATH, ARC (easy and challenge), MBPP and HumanEval."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from t2reg.adaptation.tasks import answers
from t2reg.adaptation.tasks import datasets as ds
from t2reg.adaptation.tasks.base import Category, Mode, Task, register_task
from t2reg.adaptation.tasks.checks import plan_tests
from t2reg.adaptation.tasks.datasets import LETTERS, Example
from t2reg.adaptation.tasks.judge import judge
from t2reg.adaptation.tasks.sandbox import Limits
from t2reg.errors import UncheckableTestsError


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


def cloze_prompt(ex: Example) -> str:
    """lm-evaluation-harness's ARC prompt: each option's text, after a space, continues it."""
    return f"Question: {ex.question}\nAnswer:"


def _gsm8k_extract(output: str) -> str | None:
    number = answers.final_number(output)
    return None if number is None else f"{number:g}"


def _math_prompt(ex: Example) -> str:
    return f"Solve the following problem. Put the final answer in \\boxed{{}}.\n\n{ex.question}"


def _math_check(ex: Example, output: str) -> bool:
    return answers.math_equal(answers.last_boxed(output), ex.answer)


def _mbpp_prompt(ex: Example) -> str:
    return (f"You are an expert Python programmer. {ex.question}\nYour code should pass these tests:\n"
            f"{ex.entry_point}\nWrite the code in a ```python block.")


def _humaneval_prompt(ex: Example) -> str:
    return f"Complete the following Python function. Write the whole function in a ```python block.\n\n```python\n{ex.question}```"


def code_check(limits: Limits = Limits()) -> Callable[[Example, str], bool]:
    """A checker running the extracted code in the sandbox and judging its values outside (see :mod:`judge`).

    Raises :class:`UncheckableTestsError` for a problem whose tests cannot be judged that way (the built-in
    code tasks leave those out, see :func:`judgeable`) and :class:`SandboxStartError` when the machine could
    not start the run: neither is a wrong answer.
    """

    def check(ex: Example, output: str) -> bool:
        code = answers.extract_code(output)
        if ex.id.startswith("HumanEval") and f"def {ex.entry_point}" not in code:
            code = ex.question + code  # a bare body completes the prompt's signature
        return judge(ex, code, limits).passed

    return check


def judgeable(loader: Callable[[Path | None, str], list[Example]]) -> Callable[[Path | None, str], list[Example]]:
    """``loader`` without the problems whose tests t2reg cannot judge outside the program (see :mod:`checks`):
    HumanEval's five with a loop around their assertions; every MBPP problem can be judged."""

    def load(root: Path | None, split: str) -> list[Example]:
        return [ex for ex in loader(root, split) if _can_judge(ex)]

    return load


def _can_judge(ex: Example) -> bool:
    try:
        plan_tests(ex.tests, ex.solution, ex.id)
    except UncheckableTestsError:
        return False
    return True


for _task in [
    Task("gsm8k", Category.MATH, ds.gsm8k, _gsm8k_prompt, _gsm8k_check, max_new_tokens=320,
         description="Grade-school math word problems; numeric final answer.", extract=_gsm8k_extract),
    Task("math", Category.MATH, ds.math, _math_prompt, _math_check, max_new_tokens=512, shot_split="shots",
         description="MATH competition problems (test set); \\boxed{} answer, compared with math-verify.",
         extract=answers.last_boxed, prompt_version="v2"),
    Task("arc-easy", Category.REASONING, ds.arc("easy"), choice_prompt, _choice_check, max_new_tokens=64,
         multiple_choice=True, description="AI2 ARC Easy; multiple choice.", default_mode=Mode.CLOZE,
         cloze_prompt=cloze_prompt),
    Task("arc-challenge", Category.REASONING, ds.arc("challenge"), choice_prompt, _choice_check, max_new_tokens=64,
         multiple_choice=True, description="AI2 ARC Challenge; multiple choice.", default_mode=Mode.CLOZE,
         cloze_prompt=cloze_prompt),
    # v2: answers judged outside the program's process (values compared with the reference's), and HumanEval
    # without the problems that cannot be judged so: scores of v1 do not rank with them.
    Task("mbpp", Category.CODE, judgeable(ds.mbpp), _mbpp_prompt, code_check(), max_new_tokens=384,
         shot_split="shots", description="Mostly Basic Python Problems; judged on its tests' values.",
         runs_code=True, prompt_version="v2"),
    Task("humaneval", Category.CODE, judgeable(ds.humaneval), _humaneval_prompt, code_check(), max_new_tokens=384,
         shot_split="shots", description="HumanEval (159 of its 164 problems); judged on its tests' values.",
         runs_code=True, prompt_version="v2"),
]:
    register_task(_task)
