"""The three scoring modes on a tiny real model: cloze picks the most likely option text, letter scoring
with rotations averages each option over its positions, and the questions drawn for a score are a seeded
sample named by its protocol."""

import pytest

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.scoring import _rotated, evaluate, measure, resolve_mode
from t2reg.adaptation.tasks import get_task
from t2reg.errors import InvalidInputError
from tests.helpers.backend_calls import loglikelihood
from tests.helpers.data import DATA
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    path = save_model_with_tokenizer(tmp_path_factory.mktemp("tiny") / "m", initializer_range=0.3)
    return open_backend("hf", path, batch_size=4)


@pytest.fixture(scope="module")
def arc():
    return get_task("arc-easy")


def test_cloze_picks_the_option_text_with_the_highest_summed_log_likelihood(backend, arc):
    examples = arc.examples("test", DATA)[:6]
    result = evaluate(backend, arc, examples, mode="cloze")
    for ex, row in zip(examples, result.outputs):
        alone = loglikelihood(backend, [(arc.cloze_prompt(ex), f" {text}") for text in ex.choices])
        assert row["option_logprobs"] == pytest.approx(alone, abs=1e-4)
        best = max(range(len(alone)), key=lambda i: alone[i])
        per_byte = [lp / len(text.encode()) for lp, text in zip(alone, ex.choices)]
        best_norm = max(range(len(alone)), key=lambda i: per_byte[i])
        assert row["prediction"] == "ABCDE"[best] and row["correct"] == (row["prediction"] == ex.answer)
        assert row["correct_norm"] == ("ABCDE"[best_norm] == ex.answer)
        assert row["logprob"] == pytest.approx(alone["ABCDE".index(ex.answer)], abs=1e-4)
    assert result.mode == "cloze" and result.score_norm is not None


def test_letter_rotations_average_each_option_over_its_positions(backend, arc):
    examples = arc.examples("test", DATA)[:3]
    rotated = evaluate(backend, arc, examples, mode="letter", permute=3)
    for ex, row in zip(examples, rotated.outputs):
        n = len(ex.choices)
        by_rotation = [evaluate(backend, arc, [_rotated(ex, r)], mode="letter").outputs[0]["option_logprobs"]
                       for r in range(3)]
        # in rotation r, position i shows original option (i + r) mod n
        expected = [sum(by_rotation[r][(o - r) % n] for r in range(3)) / 3 for o in range(n)]
        assert row["option_logprobs"] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(InvalidInputError, match="applies to letter scoring only"):
        evaluate(backend, arc, examples, mode="cloze", permute=2)


def test_modes_resolve_per_task():
    assert resolve_mode(get_task("arc-easy"), "auto") == "cloze"
    assert resolve_mode(get_task("arc-easy"), "choice") == "letter"  # the old name
    assert resolve_mode(get_task("gsm8k"), "auto") == "generate"
    with pytest.raises(InvalidInputError, match="not multiple choice"):
        resolve_mode(get_task("gsm8k"), "cloze")


def test_a_sample_is_seeded_random_and_its_protocol_names_it(arc):
    everything = arc.examples("test", DATA)
    first, again, other = (Questions.draw(arc, "test", 50, seed, DATA) for seed in (0, 0, 1))
    ids = [[ex.id for ex in q.examples] for q in (first, again, other)]
    assert ids[0] == ids[1] and ids[0] != ids[2] and len(set(ids[0])) == 50
    assert ids[0] != [ex.id for ex in everything[:50]]  # never the first rows
    order = {ex.id: i for i, ex in enumerate(everything)}
    assert [order[i] for i in ids[0]] == sorted(order[i] for i in ids[0])  # kept in file order
    assert first.protocol("cloze").id == again.protocol("cloze").id != other.protocol("cloze").id
    whole = Questions.draw(arc, "test", None, 0, DATA)
    assert whole.n == "full" and whole.seed is None and len(whole.examples) == len(everything)
    assert Questions.draw(arc, "test", 10**6, 0, DATA).protocol("cloze") == whole.protocol("cloze")


def test_measure_records_the_protocol_of_what_it_scored(backend, arc):
    questions = Questions.draw(arc, "test", 5, 3, DATA)
    result = measure(backend, questions, "letter", permute=2)
    assert result.protocol == questions.protocol("letter", 2) and result.protocol.n == 5
    assert [row["id"] for row in result.outputs] == [ex.id for ex in questions.examples]
