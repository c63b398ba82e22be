import pytest

from t2reg.adaptation.tasks.answers import (
    math_equal,
    choice_letter,
    extract_code,
    final_number,
    last_boxed,
    normalise_math,
    numbers_match,
    parse_number,
)


@pytest.mark.parametrize(
    "output, expected",
    [
        ("so she makes 9 * 2 = 18 dollars.\n#### 18", 18),
        ("The answer is #### 1,234", 1234),
        ("It drops by -7 degrees, so the answer is -7", -7),
        ("Total: $18.50", 18.5),
        ("He walks 3.25 miles", 3.25),
        ("#### $1,000.00 dollars", 1000),
        ("first 5, then 12 apples in total", 12),
        ("no numbers here", None),
    ],
)
def test_final_number(output, expected):
    assert final_number(output) == expected


def test_numbers_match():
    assert numbers_match(18.0, parse_number("18")) and numbers_match(0.1 + 0.2, 0.3)
    assert not numbers_match(None, 18.0) and not numbers_match(17.0, 18.0)


@pytest.mark.parametrize(
    "output, letter",
    [
        ("Let me think. The answer is (C).", "C"),
        ("the answer is B", "B"),
        ("Answer: (D)", "D"),
        ("A) because plants need light", "A"),
        ("I pick (B) here", "B"),
        ("I am not sure which one.", None),
        ("The answer is (F)", None),
    ],
)
def test_choice_letter_never_guesses(output, letter):
    assert choice_letter(output, "ABCDE") == letter


def test_boxed_and_normalisation():
    assert last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{x^{2}+1}") == "x^{2}+1"
    assert last_boxed("none") is None and last_boxed(r"\boxed{unclosed") is None
    assert normalise_math(r"\dfrac{1}{2}") == normalise_math(r"\frac12") == r"\frac{1}{2}"
    assert normalise_math(r"\left( 3, 4 \right)") == "(3,4)"
    assert normalise_math(r"\text{ cm}") == normalise_math("cm")
    assert normalise_math("5.0") == "5" and normalise_math("5.") == "5"


def test_extract_code():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```python\ndef f():\n    pass") == "def f():\n    pass"  # cut at the token limit
    assert extract_code("def g(): return 2") == "def g(): return 2"


@pytest.mark.parametrize("predicted, reference, equal", [
    ("0.5", "\\frac{1}{2}", True),
    ("\\dfrac{1}{2}", "\\frac12", True),
    ("1+x^2", "x^2+1", True),
    ("3.0", "3", True),
    ("9", "10", False),
    (None, "3", False),
    ("\\text{no idea}", "\\frac{1}{2}", False),
])
def test_math_answers_are_compared_as_mathematics(predicted, reference, equal):
    assert math_equal(predicted, reference) is equal
