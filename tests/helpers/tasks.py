"""Tasks made for tests: a multiple-choice task with one known right answer everywhere."""

import dataclasses

import numpy as np

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.models import weights_dir
from t2reg.adaptation.tasks import Example, get_task, register_task
from tests.helpers.backend_calls import loglikelihood
from tests.helpers.data import DATA

WORDS = ("light", "sand", "noise", "rocks")  # each one token of the tiny tokenizer


def always_task(registry, model: str = "tiny") -> str:
    """A multiple-choice task whose options are always the four WORDS, and whose right answer is always the
    one the base model likes least in cloze scoring: reward depends on one known direction, which the base
    model does not already take."""
    arc = get_task("arc-easy")
    backend = open_backend("hf", weights_dir(registry, model))
    probes = arc.examples("train", DATA)[:8]
    liking = {w: np.mean(loglikelihood(backend, [(arc.cloze_prompt(ex), f" {w}") for ex in probes])) for w in WORDS}
    target = min(WORDS, key=liking.get)
    others = [w for w in WORDS if w != target]

    def loader(root, split):
        rows = []
        for i, ex in enumerate(arc.examples(split, root)[:200]):
            position = i % 4  # the right option moves around: in cloze its position means nothing anyway
            choices = tuple(others[:position] + [target] + others[position:])
            rows.append(Example(f"{target}-{ex.id}", ex.question, "ABCD"[position], choices))
        return rows

    register_task(dataclasses.replace(arc, name=f"always-{target}", loader=loader, description="test: one answer"))
    return f"always-{target}"
