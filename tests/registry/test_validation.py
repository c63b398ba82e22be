import pytest

from t2reg.errors import InvalidInputError, InvalidReferenceError
from t2reg.registry.validation import Reference, parse_metric, parse_reference, parse_sources, parse_tag, validate_name


@pytest.mark.parametrize(
    "text, ref",
    [
        ("gsm8k-tiny", Reference("gsm8k-tiny")),
        ("gsm8k-tiny:12", Reference("gsm8k-tiny", version=12)),
        ("gsm8k-tiny@production", Reference("gsm8k-tiny", alias="production")),
        ("a.b_c--to-d", Reference("a.b_c--to-d")),
    ],
)
def test_references_parse(text, ref):
    assert parse_reference(text) == ref and str(ref) == text


@pytest.mark.parametrize("text", ["a:b:c", "x:0", "x:-1", "x:", "x:01a", "x@a@b", "x:1@a", "", "x y", "a/b"])
def test_bad_references_are_refused(text):
    with pytest.raises(InvalidReferenceError, match="bad reference"):
        parse_reference(text)


@pytest.mark.parametrize("name", ["a/b", "with space", "x" * 129, "", "-leading", "colon:name", "at@name"])
def test_bad_names(name):
    with pytest.raises(InvalidInputError):
        validate_name(name)


def test_metric_forms():
    m = parse_metric("gsm8k:accuracy=0.79", split="test", n=1319)
    assert (m.task, m.metric, m.value, m.split, m.n) == ("gsm8k", "accuracy", 0.79, "test", 1319)
    assert parse_metric("f1=-1e-3", default_task="mbpp").task == "mbpp"
    with pytest.raises(InvalidInputError, match="names no task"):
        parse_metric("accuracy=0.5")
    with pytest.raises(InvalidInputError, match="n must be at least 1"):
        parse_metric("t:accuracy=0.5", n=0)
    with pytest.raises(InvalidInputError, match="finite"):
        parse_metric("t:accuracy=inf")


def test_tags_and_sources():
    assert parse_tag("seed=3") == ("seed", "3")
    assert parse_tag("note=a=b") == ("note", "a=b")
    with pytest.raises(InvalidInputError, match="KEY=VALUE"):
        parse_tag("seed")
    assert parse_sources("native, transferred") == ("native", "transferred")
    with pytest.raises(InvalidInputError, match="unknown source"):
        parse_sources("native,bogus")
