"""Names follow one pattern everywhere, and no path built from one can leave its root."""

import pytest

from t2reg.errors import InvalidInputError
from t2reg.expert_file import Metric
from t2reg.files import contained
from t2reg.registry.model_sources import ModelSpec, from_builtin
from t2reg.registry.validation import check_metric, validate_model_name, validate_name, validate_revision
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
