"""Names follow one pattern everywhere, and no path built from one can leave its root."""

import pytest

from t2reg.errors import InvalidInputError, T2RegError
from t2reg.expert_file import Metric
from t2reg.files import contained
from t2reg.registry.model_sources import ModelSpec, from_builtin
from t2reg.registry.validation import (
    check_metric,
    check_tag,
    parse_metric,
    parse_reference,
    parse_tag,
    validate_model_name,
    validate_name,
    validate_revision,
)
from tests.helpers.experts import make_expert, write

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
BAD = ["..", ".", "", "a/b", "-x", "x y", "a\x1b[2Jb", "é", "a\nb", "x" * 129]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInputError):
        validate_name(name)


@pytest.mark.parametrize("name", ["..", ".", "a/../b", "../x", "a/b/c", "/abs", "a//b", "a/", "x\x00y", "a/.."])
def test_model_names_are_one_or_two_names(name):
    with pytest.raises(InvalidInputError, match="must be NAME or OWNER/NAME"):
        validate_model_name(name)


def test_hub_ids_and_revisions_pass():
    assert validate_model_name("meta-llama/Meta-Llama-3-8B-Instruct")
    assert validate_revision("refs/pr/1") == "refs/pr/1" and validate_revision(None) == ""
    for bad in ("../../x", "a/../b", "/x"):
        with pytest.raises(InvalidInputError):
            validate_revision(bad)


def test_contained_refuses_escapes_symlinks_included(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    assert contained(root, "a--b") == root / "a--b"
    for parts in (("..",), ("a", "..", ".."), ("link", "x"), (".",)):
        with pytest.raises(InvalidInputError, match="would lie outside"):
            contained(root, *parts)


@pytest.mark.parametrize("name", ["..", ".", "a/../..", "x y"])
def test_models_with_unsafe_names_are_not_registered(registry, name):
    spec = from_builtin("smollm2-135m")
    with pytest.raises(InvalidInputError):
        registry.add_model_spec(ModelSpec(name, spec.config, "local", location="/nowhere"))
    with pytest.raises(InvalidInputError):
        registry.models_dir(name)


def test_a_model_revision_cannot_steer_its_spectra_folder(registry):
    spec = from_builtin("smollm2-135m")
    with pytest.raises(InvalidInputError):
        registry.add_model_spec(ModelSpec("owner/model", spec.config, "hub", revision="../../../etc"))
    registry.add_model_spec(ModelSpec("owner/model", spec.config, "hub", revision="refs/pr/1"))
    folder = registry.spectra_dir("owner/model")
    assert folder == registry.settings.home / "spectra" / "owner--model" / "refs--pr--1"


def test_publish_validates_task_description_tags_and_embedded_metrics(registry, tmp_path):
    shapes = registry.model_shapes("smollm2-135m")
    good = write(make_expert(shapes, SMOL), tmp_path / "good.safetensors")
    for kwargs, words in [
        ({"task": "../x"}, "task"),
        ({"description": "a\x1b]0;pwned\x07"}, "control character"),
        ({"tags": {"k": "v\x00"}}, "control character"),
        ({"tags": {"bad key": "v"}}, "tag key"),
        ({"metrics": [Metric("gsm8k", "accuracy", 0.5, None, -5)]}, "n must be at least 1"),
    ]:
        with pytest.raises(InvalidInputError, match=words):
            registry.publish(good, **kwargs)
    for metrics in ([Metric("gsm8k", "accuracy", 0.5, None, -5)], [Metric("x y", "accuracy", 0.5)],
                    [Metric("gsm8k", "accuracy", 0.5, "a/b")]):
        embedded = write(make_expert(shapes, SMOL, metrics=tuple(metrics)), tmp_path / "embedded.safetensors")
        with pytest.raises(InvalidInputError):
            registry.publish(embedded)
    assert registry.list() == []


def test_embedded_metrics_with_ill_typed_fields_are_file_errors(tmp_path):
    import json

    from t2reg.errors import ExpertFileError
    from t2reg.expert_file import loads_expert
    from tests.t2reg.test_expert_file import _with_meta

    for entry in ({"task": "a", "metric": "b", "value": 0.5, "n": 1e400},
                  {"task": "a", "metric": "b", "value": 0.5, "split": {"x": 1}},
                  {"task": "a", "metric": "b", "value": True},
                  {"task": 1, "metric": "b", "value": 0.5}, "not an object"):
        text = json.dumps([entry]).replace("Infinity", "1e400")
        with pytest.raises(ExpertFileError):
            loads_expert(_with_meta(metrics=text), "m.safetensors")


def test_check_metric_bounds_n():
    check_metric(Metric("gsm8k", "accuracy", 0.5, "test", 2**63 - 1))
    with pytest.raises(InvalidInputError, match="at most"):
        check_metric(Metric("gsm8k", "accuracy", 0.5, "test", 2**63))


# '$' in re.match also matches before a final newline: every validator must look at the whole text.
NEWLINE_ENDED = [
    lambda: validate_name("evil\n"),
    lambda: validate_name("evil\n", "alias"),
    lambda: validate_model_name("owner/model\n"),
    lambda: validate_revision("main\n"),
    lambda: check_metric(Metric("gsm8k", "accuracy", 0.5, "test\n")),
    lambda: check_metric(Metric("gsm8k\n", "accuracy", 0.5)),
    lambda: parse_reference("evil\n"),
    lambda: parse_reference("evil@prod\n"),
    lambda: check_tag("key\n", "v"),
]


@pytest.mark.parametrize("check", range(len(NEWLINE_ENDED)))
def test_a_name_ending_in_a_newline_is_refused(check):
    with pytest.raises(InvalidInputError):
        NEWLINE_ENDED[check]()


def test_no_newline_ended_name_reaches_the_registry(registry, tmp_path):
    shapes = registry.model_shapes("smollm2-135m")
    good = write(make_expert(shapes, SMOL), tmp_path / "good.safetensors")
    for kwargs in ({"name": "evil\n"}, {"task": "gsm8k\n"}, {"tags": {"k\n": "v"}},
                   {"metrics": ["gsm8k:accuracy=0.5"], "split": "test\n"}):
        with pytest.raises(InvalidInputError):
            registry.publish(good, **kwargs)
    version = registry.publish(good, name="fine")
    with pytest.raises(InvalidInputError):
        registry.alias(version.ref, "prod\n")
    with pytest.raises(InvalidInputError):
        registry.record(version.ref, ["gsm8k:accuracy=0.5"], split="test\n")
    spec = from_builtin("smollm2-135m")
    for bad in (ModelSpec("owner/model\n", spec.config, "hub"), ModelSpec("owner/model", spec.config, "hub",
                                                                        revision="main\n")):
        with pytest.raises(InvalidInputError):
            registry.add_model_spec(bad)
    with pytest.raises(InvalidInputError):
        registry.add_model("smollm2-135m", aliases=["smol\n"])
    assert [v.ref for v in registry.list()] == ["fine:1"] and registry.get("fine:1").aliases == ()


def test_aliases_and_tag_keys_hold_128_characters_as_readme_says(registry, tmp_path):
    shapes = registry.model_shapes("smollm2-135m")
    version = registry.publish(write(make_expert(shapes, SMOL), tmp_path / "e.safetensors"), name="e")
    longest = "a" * 128
    assert registry.alias(version.ref, longest).aliases == (longest,)
    assert registry.get(f"e@{longest}").ref == "e:1"
    assert registry.tag(version.ref, {longest: "v"}).tags == {longest: "v"}
    registry.add_model("smollm2-135m", aliases=["m" * 128])
    assert registry.get_model("m" * 128).name == SMOL
    for refused in (lambda: registry.alias(version.ref, "a" * 129), lambda: registry.tag(version.ref, {"k" * 129: "v"}),
                    lambda: registry.add_model("smollm2-135m", aliases=["m" * 129])):
        with pytest.raises(InvalidInputError, match="at most 128"):
            refused()


def test_a_long_input_is_echoed_clipped_with_its_length(registry):
    long = "x" * 100_000
    for attempt in (lambda: registry.get(long + ":1"), lambda: registry.get(long + " y"),
                    lambda: validate_model_name(long), lambda: parse_tag(long), lambda: parse_metric(long),
                    lambda: parse_metric(f"t:accuracy={long}"), lambda: registry.get_model(long),
                    lambda: registry.list(where=f"tag.k={long}\x1b"), lambda: registry.list(where=long)):
        with pytest.raises(T2RegError) as info:
            attempt()
        message = str(info.value)
        assert len(message) < 400 and "\n" not in message, message[:300]
        assert "characters" in message, message


def test_clip_keeps_short_text_and_says_how_long_long_text_was():
    from t2reg.errors import clip, shown

    assert clip("short") == "short" and shown("short") == "'short'"
    assert clip("y" * 150) == "y" * 100 + "… (150 characters)"
    assert shown("y" * 150) == repr("y" * 100) + "… (150 characters)"
    # a message that quotes input without shown() is still bounded, by the error class itself
    assert len(str(InvalidInputError("z" * 5000))) < 1100
