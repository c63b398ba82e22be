import math

import pytest

from t2reg.question_results import choice_logprob, normalised


def _row(answer: str, scores: list[float] | None) -> dict:
    row = {"id": "q", "prediction": "A", "answer": answer, "correct": answer == "A", "logprob": -1.0}
    return row if scores is None else {**row, "option_logprobs": scores}


def test_normalised_scores_are_a_log_softmax_whatever_their_scale():
    out = normalised([-1000.0, -1001.0, -1002.0])  # far below exp's range: shifted before exponentiating
    assert math.fsum(math.exp(v) for v in out) == pytest.approx(1.0)
    assert out[0] - out[1] == pytest.approx(1.0)


def test_the_right_answer_among_its_options_ignores_a_shift_of_every_option():
    scores = [-2.0, -1.0, -3.0]
    assert choice_logprob(_row("B", scores)) == pytest.approx(normalised(scores)[1])
    assert choice_logprob(_row("B", [s - 5.0 for s in scores])) == pytest.approx(choice_logprob(_row("B", scores)))
    assert choice_logprob(_row("A", scores)) < choice_logprob(_row("B", scores))


def test_rows_without_option_scores_or_with_an_answer_beyond_them_have_none():
    assert choice_logprob(_row("A", None)) is None  # a generated answer: no options scored
    assert choice_logprob(_row("D", [-1.0, -2.0])) is None
    assert choice_logprob(_row("42", [-1.0, -2.0])) is None
