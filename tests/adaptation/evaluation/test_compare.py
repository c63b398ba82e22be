"""Paired comparison: pairing by question id, the statistics it reports, and `t2reg compare` on a tiny
real model (each side evaluated once, then read back from the registry)."""

import pytest

from t2reg.adaptation.evaluation.paired import Subject, pair
from t2reg.errors import InvalidInputError
from t2reg.protocols import Protocol
from t2reg.question_results import ConstantAnswer
from tests.cli.test_commands import CLI
from tests.helpers.data import DATA
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


def _rows(correct, logprobs, ids=None):
    ids = ids or [f"q{i}" for i in range(len(correct))]
    return [{"id": i, "prediction": "A", "answer": "A" if c else "B", "correct": c, "logprob": lp}
            for i, c, lp in zip(ids, correct, logprobs)]


def test_pairing_counts_discordant_questions_and_reports_y_minus_x():
    x = _rows([True, True, False, False, True], [-1.0, -1.0, -2.0, -2.0, -1.0])
    y = _rows([True, False, True, True, True], [-0.5, -1.5, -1.0, -1.0, -0.5])
    c = pair(x, y, "x", "y")
    assert (c.n, c.accuracy_x, c.accuracy_y, c.only_x, c.only_y) == (5, 0.6, 0.8, 1, 2)
    assert c.delta == pytest.approx(0.2) and c.mcnemar_p == pytest.approx(1.0)  # 1 vs 2 discordant: p = 1
    assert c.logprob_delta == pytest.approx(0.5)
    low, high = c.delta_ci95
    assert low <= c.delta <= high


def _choice_rows(predictions, answers, ids=None):
    ids = ids or [f"q{i}" for i in range(len(answers))]
    return [{"id": i, "prediction": p, "answer": a, "correct": p == a, "logprob": -1.0,
             "option_logprobs": [-1.0, -2.0, -3.0]} for i, p, a in zip(ids, predictions, answers)]


def test_multiple_choice_pairs_carry_the_constant_baseline_and_each_sides_spread():
    answers = list("ABBBC")
    x = _choice_rows(list("ABBAC"), answers)
    y = _choice_rows(list("BBBBB"), answers)  # a constant answer: right exactly as often as the baseline
    c = pair(x, y + _choice_rows(["C"], ["C"], ids=["only-y"]), "x", "y")  # counted on the paired questions only
    assert c.n == 5 and c.constant == ConstantAnswer("B", 0.6) and c.accuracy_y == 0.6
    assert c.predictions_x == {"A": 2, "B": 2, "C": 1} and c.predictions_y == {"B": 5}
    record = c.to_dict()
    assert record["constant_baseline"] == {"answer": "B", "accuracy": 0.6}
    assert (record["predictions_x"], record["predictions_y"]) == (c.predictions_x, c.predictions_y)
    open_answers = pair(_rows([True], [-1.0]), _rows([False], [-2.0]))  # generation rows: no options scored
    assert (open_answers.constant, open_answers.predictions_x, open_answers.predictions_y) == (None, None, None)


def test_the_right_answers_share_among_the_options_separates_skill_from_drift():
    def rows(shift: float, right_gain: float) -> list[dict]:
        # every option's score moves by `shift`; the right one (B) gains `right_gain` more
        return [{"id": f"q{i}", "prediction": "A", "answer": "B", "correct": False, "logprob": -2.0 + shift + right_gain,
                 "option_logprobs": [-1.0 + shift, -2.0 + shift + right_gain, -3.0 + shift]} for i in range(4)]

    drift = pair(rows(0.0, 0.0), rows(-1.5, 0.0))  # every option less likely, the right one's share unchanged
    assert drift.logprob_delta == pytest.approx(-1.5) and drift.choice_logprob_delta == pytest.approx(0.0, abs=1e-12)
    skill = pair(rows(0.0, 0.0), rows(-1.5, 0.5))  # less likely in the text, but gaining on the other options
    assert skill.logprob_delta == pytest.approx(-1.0) and skill.choice_logprob_delta > 0.2
    low, high = skill.choice_logprob_delta_ci95
    assert low <= skill.choice_logprob_delta <= high
    assert skill.to_dict()["choice_logprob_delta"] == skill.choice_logprob_delta
    open_answers = pair(_rows([True], [-1.0]), _rows([False], [-2.0]))
    assert (open_answers.choice_logprob_delta, open_answers.choice_logprob_delta_ci95) == (None, None)


def test_only_shared_questions_are_paired():
    x = _rows([True, False], [-1.0, -1.0], ids=["a", "b"])
    y = _rows([False, False, True], [-1.0, -1.0, -1.0], ids=["b", "c", "d"])
    assert pair(x, y).n == 1
    with pytest.raises(InvalidInputError, match="share no scored question"):
        pair(x, _rows([True], [0.0], ids=["z"]))


def test_subjects_are_expert_refs_or_base_models():
    assert Subject.parse("base:tiny") == Subject(model="tiny") and str(Subject(model="tiny")) == "base:tiny"
    assert Subject.parse("e:1") == Subject(ref="e:1")
    with pytest.raises(InvalidInputError, match="names no model"):
        Subject.parse("base:")


@pytest.fixture
def cli(tmp_path, capsys):
    save_model_with_tokenizer(tmp_path / "tiny")
    runner = CLI(tmp_path / "home", capsys)
    runner.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    runner.ok("model", "decompose", "tiny")
    runner.ok("new-expert", "--model", "tiny", "--task", "arc-easy", "--noise", "0.5", "--out", str(tmp_path / "e"))
    runner.ok("publish", str(tmp_path / "e"))
    return runner


def test_compare_evaluates_what_is_missing_then_reads_it_back(cli):
    args = ["--task", "arc-easy", "--limit", "8", "--data-dir", str(DATA)]
    same = cli.json("compare", "base:tiny", "base:tiny", *args)
    assert (same["n"], same["delta"], same["mcnemar_p"], same["delta_ci95"]) == (8, 0, 1.0, [0.0, 0.0])
    assert same["logprob_delta"] == 0 and same["protocol"]["mode"] == "cloze" and same["protocol"]["n"] == 8
    out = cli.json("compare", "base:tiny", "arc-easy-tiny:1", *args)
    assert out["accuracy_x"] == same["accuracy_x"] and out["n"] == 8
    assert out["logprob_delta"] != 0  # the expert's weights really changed the scores
    scored = cli.json("show", "arc-easy-tiny:1")["evaluations"]
    assert {e["protocol"] for e in scored} == {out["protocol"]["id"]} and len(scored) == 3  # evaluated once
    again = cli.json("compare", "base:tiny", "arc-easy-tiny:1", "--protocol", out["protocol"]["id"],
                     "--data-dir", str(DATA))
    assert again == out and len(cli.json("show", "arc-easy-tiny:1")["evaluations"]) == 3  # read back, not rerun
    human = cli.ok("compare", "base:tiny", "arc-easy-tiny:1", *args)
    assert "McNemar exact p" in human and "paired bootstrap 95% CI" in human
    assert sum(out["predictions_x"].values()) == sum(out["predictions_y"].values()) == out["n"] == 8
    right = out["constant_baseline"]["accuracy"] * 8  # questions whose right answer is the most common one
    assert right == round(right) and 2 <= right <= 8  # 8 questions of at most 4 or 5 options
    assert f"constant baseline {out['constant_baseline']['accuracy']:.4f}" in human and "predictions Y: " in human
    assert f"log p(right answer | its options), Y - X: {out['choice_logprob_delta']:+.4f}" in human


def test_a_sample_is_read_from_a_whole_split_run_instead_of_scored_again(cli):
    whole = cli.json("eval", "arc-easy-tiny:1", "--task", "arc-easy", "--split", "validation", "--data-dir", str(DATA))
    cli.json("eval", "--base", "tiny", "--task", "arc-easy", "--split", "validation", "--data-dir", str(DATA))
    before = cli.json("show", "arc-easy-tiny:1")["evaluations"]
    out = cli.json("compare", "base:tiny", "arc-easy-tiny:1", "--task", "arc-easy", "--split", "validation",
                   "--limit", "30", "--data-dir", str(DATA))
    assert out["n"] == 30 and out["protocol"]["n"] == 30
    assert cli.json("show", "arc-easy-tiny:1")["evaluations"] == before  # nothing scored again
    assert whole["n"] > 30


def test_a_two_pass_score_never_stands_in_for_the_base_model_alone(cli):
    from t2reg.adaptation.evaluation.compare import compare
    from t2reg.adaptation.evaluation.spec import EvalSpec
    from t2reg.cli.context import AppContext
    from t2reg.expert_file import Metric
    from t2reg.question_results import dumps_results

    registry = AppContext(home=cli.base[1]).registry()
    plain = Protocol("arc-easy", "test", "cloze", "v1", n=4, sample_seed=0)
    routed = Protocol("arc-easy", "test", "cloze", "v1", n=4, sample_seed=0, routing="prompt")
    assert plain.id != routed.id
    fake = dumps_results([{"id": "x", "prediction": "A", "answer": "A", "correct": True, "logprob": 0.0}])
    registry.record_model_evaluation("tiny", [Metric("arc-easy", "accuracy", 1.0, "test", 4)],
                                     source="two-pass:prompt", protocol=routed, results=fake)
    assert registry.latest_measured("arc-easy", plain.id, model="tiny") is None
    result = compare(registry, "base:tiny", "base:tiny", EvalSpec("arc-easy", limit=4, data_dir=str(DATA)))
    assert result.protocol == plain and result.n == 4  # the plain base model, evaluated for this


def test_scores_typed_in_by_hand_cannot_be_compared(cli):
    code, _, err = cli("compare", "base:tiny", "arc-easy-tiny:1", "--task", "arc-easy", "--protocol", "x")
    assert code == 2 and "give --task" in err  # the protocol defines the questions: not both
    code, _, err = cli("compare", "base:tiny", "arc-easy-tiny:1", "--protocol", "reported:arc-easy")
    assert code == 3 and "no protocol 'reported:arc-easy'" in err  # nothing recorded under it yet
    cli.ok("record", "arc-easy-tiny:1", "--metric", "accuracy=0.5")
    code, _, err = cli("compare", "base:tiny", "arc-easy-tiny:1", "--protocol", "reported:arc-easy")
    assert code == 4 and "recorded without per-question results" in err


def test_scores_taken_without_bos_point_to_the_protocol_to_compare_under():
    from t2reg.adaptation.evaluation.paired import spec_of
    from t2reg.adaptation.evaluation.spec import EvalSpec
    from t2reg.protocols import without_bos_spec

    measured = Protocol("arc-easy", "test", "cloze", "v1", n=50, sample_seed=0)
    assert spec_of(measured.to_dict(), EvalSpec("arc-easy")).limit == 50
    with pytest.raises(InvalidInputError, match=f"without the <bos>.*compare under {measured.id} "):
        spec_of(without_bos_spec("arc-easy", measured.to_dict()), EvalSpec("arc-easy"))


def test_a_bfloat16_score_is_its_own_protocol_and_never_pairs_with_a_float32_one(cli):
    args = ["--task", "arc-easy", "--limit", "8", "--data-dir", str(DATA)]
    wide = cli.json("compare", "base:tiny", "arc-easy-tiny:1", *args)
    narrow = cli.json("compare", "base:tiny", "arc-easy-tiny:1", *args, "--dtype", "bfloat16")
    assert narrow["protocol"]["dtype"] == "bfloat16" and "dtype" not in wide["protocol"]
    assert narrow["protocol"]["id"] != wide["protocol"]["id"]
    scored = cli.json("show", "arc-easy-tiny:1")["evaluations"]
    assert {e["protocol"] for e in scored} == {wide["protocol"]["id"], narrow["protocol"]["id"]}  # measured again
    # under its id, the stored protocol measures in bfloat16 again (read back, nothing rerun)
    again = cli.json("compare", "base:tiny", "arc-easy-tiny:1", "--protocol", narrow["protocol"]["id"],
                     "--data-dir", str(DATA))
    assert again == narrow and len(cli.json("show", "arc-easy-tiny:1")["evaluations"]) == len(scored)
