"""The decode-time ceiling: the target's option scores plus beta times the expert's shift on the source."""

import numpy as np
import pytest

from t2reg.adaptation.evaluation.proxy import option_shift, proxy_tuned, shuffled_shifts
from t2reg.errors import InvalidInputError


def _rows(scores, answers="ABCD"):
    return [{"id": f"q{i}", "answer": answers[i % len(answers)], "option_logprobs": list(s)} for i, s in enumerate(scores)]


TARGET = _rows([[-1.0, -2.0, -3.0, -4.0]] * 8)  # the target always picks A
SOURCE = _rows([[-2.0, -2.0, -2.0, -2.0]] * 8)


def test_beta_zero_is_the_target_and_a_shift_towards_the_answer_moves_it():
    moved = _rows([[-2.0 + (5.0 if j == i % 4 else 0.0) for j in range(4)] for i in range(8)])  # +5 on the answer
    base = proxy_tuned(TARGET, SOURCE, moved, beta=0)
    assert [r["prediction"] for r in base] == ["A"] * 8 and sum(r["correct"] for r in base) == 2
    tuned = proxy_tuned(TARGET, SOURCE, moved, beta=1)
    assert all(r["correct"] for r in tuned)
    assert np.allclose([np.exp(r["option_logprobs"]).sum() for r in tuned], 1)  # still a distribution per question


def test_the_shuffled_control_keeps_global_preferences_and_loses_the_per_question_ones():
    towards_b = _rows([[-2.0, 1.0, -2.0, -2.0]] * 8)  # a global push to B: survives shuffling
    assert [r["prediction"] for r in proxy_tuned(TARGET, SOURCE, towards_b, beta=1, shuffle_seed=0)] == ["B"] * 8
    shifts = {f"q{i}": np.full(4 if i < 6 else 3, float(i)) for i in range(8)}
    shuffled = shuffled_shifts(shifts, seed=0)
    assert sorted(shuffled) == sorted(shifts)
    assert {float(v[0]) for k, v in shuffled.items() if len(v) == 3} == {6.0, 7.0}  # only among equal option counts
    assert option_shift([-1.0, -1.0], [-1.0, -1.0]) == pytest.approx([0.0, 0.0])


def test_evaluations_on_other_questions_are_refused():
    other = [{**r, "id": "x" + r["id"]} for r in SOURCE]
    with pytest.raises(InvalidInputError, match="share no question"):
        proxy_tuned(TARGET, other, other)
