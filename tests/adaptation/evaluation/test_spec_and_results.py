"""The eval spec names what is wrong with it; results count outputs and carry their interval."""

import pytest

from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.errors import InvalidInputError, NotFoundError, UnknownNameError
from t2reg.question_results import ConstantAnswer, loads_results
from t2reg.stats import wilson_interval


@pytest.mark.parametrize("spec, options", [
    (EvalSpec("arc-easy"), ("ref", "base")),
    (EvalSpec("arc-easy", ref="a:1", base="tiny"), ("ref", "base")),
    (EvalSpec("arc-easy", base="tiny", limit=0), ("limit",)),
    (EvalSpec("arc-easy", base="tiny", batch_size=0), ("batch_size",)),
    (EvalSpec("arc-easy", base="tiny", split="dev"), ("split",)),
    (EvalSpec("arc-easy", base="tiny", mode="letters"), ("mode",)),
])
def test_a_bad_spec_names_its_options(spec, options):
    with pytest.raises(InvalidInputError) as refused:
        spec.validate()
    assert refused.value.options == options
    flags = refused.value.render(lambda o: "--" + o.replace("_", "-"))
    assert all(f"--{o.replace('_', '-')}" in flags for o in options)


def test_an_unknown_backend_is_an_unknown_name_that_names_its_option():
    with pytest.raises(UnknownNameError) as refused:
        EvalSpec("arc-easy", base="tiny", backend="onnx").validate()
    assert refused.value.options == ("backend",) and refused.value.kind == "backend" and "hf" in refused.value.known
    assert refused.value.render(lambda o: "--" + o) == f"unknown --backend 'onnx'; choose from {', '.join(refused.value.known)}"


def test_an_unknown_task_is_not_found():
    with pytest.raises(NotFoundError, match="unknown task 'nope'"):
        EvalSpec("nope", base="tiny").validate()


def test_a_spec_round_trips_through_plain_data():
    spec = EvalSpec("arc-easy", base="tiny", limit=20, mode="choice")
    assert EvalSpec.from_dict(spec.to_dict()) == spec
    assert EvalSpec.default("batch_size") == 16


def test_results_count_outputs_and_mean_the_right_answers_logprob():
    outputs = [{"id": "q1", "prediction": "A", "answer": "A", "correct": True, "correct_norm": True, "logprob": -1.0,
                "option_logprobs": [-1.0, -2.0]},
               {"id": "q2", "prediction": "A", "answer": "B", "correct": False, "correct_norm": True, "logprob": -3.0,
                "option_logprobs": [-1.0, -3.0]},
               {"id": "q3", "prediction": "A", "answer": "A", "correct": True, "correct_norm": False, "logprob": -2.0,
                "option_logprobs": [-2.0, -4.0]}]
    result = EvalResult.from_outputs("arc-easy", "test", "accuracy", "cloze", outputs, 1.5)
    assert (result.n, result.correct, result.score, result.mean_correct_logprob) == (3, 2, 2 / 3, -2.0)
    assert result.interval == wilson_interval(2, 3) and result.score_norm == 2 / 3
    assert [m.metric for m in result.metrics()] == ["accuracy", "accuracy_norm", "logprob"]
    # the trivial baselines beside the score: always answering A gets 2 of 3; every prediction is A
    assert result.constant_baseline() == ConstantAnswer("A", 2 / 3)
    assert result.prediction_histogram() == {"A": 3} and result.dominant_prediction() == ("A", 1.0)
    assert loads_results(result.results_blob()) == outputs


def test_wilson_interval_is_sane_at_the_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35  # hand-computed: 0.278
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.65 < low < 0.8
