"""The decode-time ceiling of a cross-family transfer (proxy-tuning, arXiv 2401.08565).

Score each option of a question by what the target base model gives it plus
β times what the expert changes on the source model:

    score(option) = log p_t(option) + β · (log p_s^z(option) − log p_s(option))

with each model's option log-probabilities normalised over the question's
options, so the two tokenizers never meet. This is what a distilled target
would do if it reproduced the expert's effect exactly on every question: if
this does not beat the target's base model, distillation cannot, and the
bench says so before spending hours on training. It reads recorded
evaluations (per-question option log-probabilities, cloze) of the three
conditions on the same questions; it runs no model.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.question_results import LETTERS, normalised

Rows = Sequence[dict[str, Any]]


def proxy_tuned(target_base: Rows, source_base: Rows, source_expert: Rows, beta: float = 1.0,
                shuffle_seed: int | None = None) -> list[dict[str, Any]]:
    """Per-question rows of the combined scorer (as cloze rows: prediction, correct, option log-probs).

    ``shuffle_seed`` hands each question the expert's shift of another question with as many options: the
    control that keeps any global preference and removes the per-question information.
    """
    by_id = [{row["id"]: row for row in rows} for rows in (source_base, source_expert)]
    shared = [row for row in target_base if all(row["id"] in found for found in by_id)]
    if not shared:
        raise InvalidInputError("the three evaluations share no question; score them under one protocol")
    for row in shared:
        if not row.get("option_logprobs"):
            raise InvalidInputError("proxy scoring needs per-option log-probabilities (cloze or letter results)")
    shifts = {row["id"]: option_shift(by_id[0][row["id"]]["option_logprobs"], by_id[1][row["id"]]["option_logprobs"])
              for row in shared}
    if shuffle_seed is not None:
        shifts = shuffled_shifts(shifts, shuffle_seed)
    out = []
    for row in shared:
        combined = normalised(normalised(row["option_logprobs"]) + beta * shifts[row["id"]])
        truth = LETTERS.index(row["answer"])
        best = int(np.argmax(combined))  # ties: the earliest option, as evaluation breaks them
        out.append({"id": row["id"], "prediction": LETTERS[best], "answer": row["answer"], "correct": best == truth,
                    "logprob": float(combined[truth]), "option_logprobs": combined.tolist()})
    return out


def option_shift(base: Sequence[float], moved: Sequence[float]) -> np.ndarray:
    """What an expert does to one question: log p^z − log p per option, each normalised over the options."""
    return normalised(moved) - normalised(base)


def shuffled_shifts(shifts: dict[str, Any], seed: int) -> dict[str, Any]:
    """Each question's shift handed to another question with as many options (seeded): a global preference
    (for a position, a length) survives, the per-question information does not."""
    rng = np.random.default_rng(seed)
    groups: dict[int, list[str]] = {}
    for q in sorted(shifts):
        groups.setdefault(len(shifts[q]), []).append(q)
    out = {}
    for questions in groups.values():
        order = rng.permutation(len(questions))
        out |= {q: shifts[questions[j]] for q, j in zip(questions, order)}
    return out
