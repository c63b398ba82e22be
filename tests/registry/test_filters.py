import pytest

from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.registry.filters import Clause, parse_filter
from tests.helpers.experts import make_expert, write


def test_clauses_and_in_lists():
    f = parse_filter("model=mistral-7b, task in (gsm8k, mbpp,arc-easy),tag.reviewed=yes")
    assert f.clauses == (Clause("model", ("mistral-7b",)), Clause("task", ("gsm8k", "mbpp", "arc-easy")),
                         Clause("tag.reviewed", ("yes",)))


@pytest.mark.parametrize("text, words", [
    ("", "empty filter"), ("model", "use key=value"), ("colour=red", "unknown filter key 'colour'"),
    ("task in (a,b", "unclosed"), ("task in a,b)", "unbalanced"), ("task=", "has no value"), ("tag.=x", "unknown"),
])
def test_malformed_filters_name_the_problem(text, words):
    with pytest.raises(InvalidInputError, match=words):
        parse_filter(text)


@pytest.fixture
def catalog(registry, tmp_path):
    smol = registry.model_shapes("smollm2-135m")
    gemma = registry.model_shapes("gemma3-270m")
    for i, (shapes, base, task, source) in enumerate([
        (smol, "HuggingFaceTB/SmolLM2-135M-Instruct", "gsm8k", "native"),
        (smol, "HuggingFaceTB/SmolLM2-135M-Instruct", "mbpp", "native"),
        (gemma, "google/gemma-3-270m", "gsm8k", "transferred"),
        (gemma, "google/gemma-3-270m", "arc-easy", "native"),
    ]):
        path = write(make_expert(shapes, base, task=task, seed=i, source=source), tmp_path / f"{i}.safetensors")
        registry.publish(path, tags={"reviewed": "yes"} if i % 2 == 0 else {})
    registry.publish(write(make_expert(smol, "HuggingFaceTB/SmolLM2-135M-Instruct", seed=9), tmp_path / "v2.safetensors"))
    return registry


def _refs(versions):
    return sorted(v.ref for v in versions)


def test_where_filters_in_sql(catalog):
    assert _refs(catalog.list(where="model=smollm2-135m")) == ["gsm8k-smollm2-135m:2", "mbpp-smollm2-135m:1"]
    assert _refs(catalog.list(where="task in (gsm8k,arc-easy),source=native")) == [
        "arc-easy-gemma3-270m:1", "gsm8k-smollm2-135m:2"]
    assert _refs(catalog.list(where="tag.reviewed=yes")) == ["gsm8k-gemma3-270m:1"]  # latest gsm8k-smollm2 is untagged
    assert _refs(catalog.list(where="name in (mbpp-smollm2-135m,nope)")) == ["mbpp-smollm2-135m:1"]


def test_pool_unions_filters_and_refs_and_names_an_empty_filter(catalog):
    pool = catalog.pool(["model=gemma3-270m", "task=gsm8k", "mbpp-smollm2-135m:1"])
    assert _refs(pool) == ["arc-easy-gemma3-270m:1", "gsm8k-gemma3-270m:1", "gsm8k-smollm2-135m:2", "mbpp-smollm2-135m:1"]
    with pytest.raises(NotFoundError, match="pool filter 'task=math' matched no live expert"):
        catalog.pool(["model=gemma3-270m", "task=math"])
    with pytest.raises(NotFoundError, match="unknown model 'nope'"):
        catalog.pool(["model=nope"])
