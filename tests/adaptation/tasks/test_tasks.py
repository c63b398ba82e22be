"""The built-in tasks on the real data in ../shared/data."""


import pytest

from t2reg.adaptation.tasks import LETTERS
from t2reg.adaptation.tasks import CATEGORIES, all_tasks, get_task
from t2reg.errors import InvalidInputError, NotFoundError
from tests.helpers.data import require_data

@pytest.fixture(scope="module")
def data():
    return require_data()


def test_the_six_built_in_tasks_are_registered():
    assert {t.name for t in all_tasks()} >= {"gsm8k", "math", "arc-easy", "arc-challenge", "mbpp", "humaneval"}
    assert all(t.category in CATEGORIES for t in all_tasks())
    with pytest.raises(NotFoundError, match="unknown task 'nope'"):
        get_task("nope")


@pytest.mark.parametrize("name, test_size", [("gsm8k", 1319), ("arc-easy", 2376), ("arc-challenge", 1172),
                                             ("mbpp", 500), ("humaneval", 151), ("math", 4750)])
def test_splits_are_deterministic_and_shots_never_touch_the_test_split(data, name, test_size):
    task = get_task(name)
    test = task.examples("test", data)
    assert len(test) == test_size and [e.id for e in test] == [e.id for e in task.examples("test", data)]
    shots = task.shots(5, seed=3, data_dir=data)
    assert [e.id for e in shots] == [e.id for e in task.shots(5, seed=3, data_dir=data)]
    assert not {e.id for e in shots} & {e.id for e in test}
    with pytest.raises(InvalidInputError, match="unknown split"):
        task.examples("dev", data)


def _right_and_wrong(task, ex):
    if task.name == "gsm8k":
        return ex.solution, ex.solution.rsplit("####", 1)[0] + "#### 999999"
    if task.multiple_choice:
        wrong = LETTERS[(LETTERS.index(ex.answer) + 1) % len(ex.choices)]
        return f"So the answer is ({ex.answer}).", f"So the answer is ({wrong})."
    if task.name == "math":
        return ex.solution, r"\boxed{-123456}"
    return f"```python\n{ex.solution}\n```", "```python\ndef nothing():\n    return None\n```"


@pytest.mark.parametrize("name", ["gsm8k", "arc-easy", "arc-challenge", "math", "mbpp", "humaneval"])
def test_reference_answers_score_right_and_wrong_ones_wrong(data, name):
    task = get_task(name)
    for ex in task.examples("test", data)[:4]:
        right, wrong = _right_and_wrong(task, ex)
        assert task.check(ex, right), ex.id
        assert not task.check(ex, wrong), ex.id


def test_prompts_carry_the_question_and_options(data):
    ex = get_task("arc-easy").examples("test", data)[0]
    prompt = get_task("arc-easy").prompt(ex)
    assert ex.question in prompt and "(A)" in prompt and "The answer is (X)" in prompt


def test_missing_data_dir_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv("T2REG_DATA_DIR", raising=False)
    with pytest.raises(NotFoundError, match="give data_dir or set T2REG_DATA_DIR"):
        get_task("math").examples("test", None)  # MATH has no hub source here: the data dir is required
    with pytest.raises(NotFoundError, match="not found under the data directory"):
        get_task("gsm8k").examples("test", tmp_path)


def test_hub_shaped_arc_rows_become_the_same_examples(data):
    from t2reg.adaptation.tasks.datasets import _jsonl, arc_from_hub

    original = next(iter(_jsonl(data / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl")))
    hub_row = {"id": original["id"], "question": original["question"]["stem"], "answerKey": original["answerKey"],
               "choices": {"text": [c["text"] for c in original["question"]["choices"]],
                           "label": [c["label"] for c in original["question"]["choices"]]}}
    assert arc_from_hub(hub_row) == original


def test_without_a_data_dir_the_hub_is_tried_and_fails_clearly(monkeypatch):
    import importlib.util

    monkeypatch.delenv("T2REG_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = "cannot load openai/gsm8k" if importlib.util.find_spec("datasets") else "`datasets` package"
    with pytest.raises(NotFoundError, match=expected):
        get_task("gsm8k").examples("test", None)


def test_dispatch_examples_are_labelled_with_their_source_category(data):
    from t2reg.adaptation.tasks import CATEGORIES

    task = get_task("dispatch")
    train, test = task.examples("train", data), task.examples("test", data)
    assert len(train) == 4 * 300 and len(test) == 4 * 100
    assert {ex.answer for ex in train} == {"A", "B", "C"}  # code, math, reasoning; nobody is 'other'
    assert all(ex.choices == CATEGORIES for ex in train)
    by_source = {ex.id.split("-")[1]: ex.answer for ex in train}
    assert by_source == {"gsm8k": "B", "mbpp": "A", "arc": "C"}
    assert not {ex.id for ex in train} & {ex.id for ex in test}
    prompt = task.prompt(train[0])
    assert "classify it into one of these categories: 'code', 'math', 'reasoning', 'other'" in prompt
    assert "(A) code" in prompt and "(D) other" in prompt
