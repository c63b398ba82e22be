"""Tasks: what a task is and its registry, the evaluation data, answer extraction, the code sandbox,
the built-in tasks and the dispatch task (registered by importing them here)."""

from t2reg.adaptation.tasks.base import (
    CATEGORIES,
    CHOICE_MODES,
    SPLITS,
    Category,
    Mode,
    Task,
    all_tasks,
    get_task,
    register_task,
)
from t2reg.adaptation.tasks.datasets import LETTERS, SPLIT_SEED, Example, data_dir, sample

# Registration on import: the built-ins first, then the dispatch task built from them.
from t2reg.adaptation.tasks import builtin  # noqa: E402,F401  isort: skip
from t2reg.adaptation.tasks import dispatch  # noqa: E402,F401  isort: skip

__all__ = ["CATEGORIES", "CHOICE_MODES", "LETTERS", "SPLITS", "SPLIT_SEED", "Category", "Example", "Mode", "Task",
           "all_tasks", "data_dir", "get_task", "register_task", "sample"]
