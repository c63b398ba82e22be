"""Bad input gets a clear error and leaves no row and no stray blob."""

import uuid

import numpy as np
import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from t2reg.registry.entities import Lineage
from t2reg.enums import Relation
from t2reg.errors import ConflictError, InvalidInputError, NotFoundError, T2RegError
from t2reg.registry import Registry
from t2reg.registry.orm import EvaluationRow, ExpertRow, VersionRow, VersionTagRow
from t2reg.settings import load_settings
from tests.helpers.experts import make_expert, write
from t2reg.expert_file import Metric
from tests.t2reg.test_expert_file import BAD_FILES

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _counts(registry):
    with registry.db.session() as s:
        rows = tuple(s.scalar(select(func.count()).select_from(t)) for t in (ExpertRow, VersionRow, EvaluationRow, VersionTagRow))
    blobs = len(list(registry.blobs.iter_blobs())) + len(list(registry.blobs.iter_temp_files()))
    return rows, blobs


@pytest.fixture
def good(registry, tmp_path):
    return write(make_expert(registry.model_shapes("smollm2-135m"), SMOL), tmp_path / "good.safetensors")


def _expert_with(registry, tmp_path, mutate):
    expert = make_expert(registry.model_shapes("smollm2-135m"), SMOL)
    mutate(expert.vectors)
    from safetensors.numpy import save

    path = tmp_path / "bad.safetensors"
    path.write_bytes(save(expert.vectors, metadata=expert.meta.to_header()))
    return path


def _wrong_length(v):
    v["model.layers.0.mlp.up_proj.weight"] = np.ones(7, np.float32)


def _not_a_matrix(v):
    v["model.embed_tokens.weight"] = np.ones(576, np.float32)


def _layer_out_of_range(v):
    v["model.layers.99.mlp.up_proj.weight"] = np.ones(576, np.float32)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_files_leave_nothing_behind(registry, tmp_path, case):
    build, words = BAD_FILES[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(build())
    before = _counts(registry)
    with pytest.raises(InvalidInputError, match=words):
        registry.publish(path, model="smollm2-135m", task="gsm8k")
    assert _counts(registry) == before


@pytest.mark.parametrize(
    "mutate, words",
    [(_wrong_length, "has length 7, but"), (_not_a_matrix, "not an adaptable matrix"),
     (_layer_out_of_range, "not an adaptable matrix")],
)
def test_shape_mismatches_leave_nothing_behind(registry, tmp_path, mutate, words):
    path = _expert_with(registry, tmp_path, mutate)
    before = _counts(registry)
    with pytest.raises(InvalidInputError, match=words):
        registry.publish(path)
    assert _counts(registry) == before


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"model": "no-such-model"}, NotFoundError, "unknown model 'no-such-model'"),
        ({"model": "gemma3-270m"}, ConflictError, "the file says"),
        ({"metrics": ["gsm8k:accuracy"]}, InvalidInputError, "expected TASK:METRIC=VALUE"),
        ({"metrics": ["gsm8k:accuracy="]}, InvalidInputError, "has no value"),
        ({"metrics": ["gsm8k:accuracy=high"]}, InvalidInputError, "is not a number"),
        ({"metrics": ["gsm8k:accuracy=nan"]}, InvalidInputError, "finite"),
        ({"name": "a/b"}, InvalidInputError, "no '/'"),
        ({"name": "has space"}, InvalidInputError, "no '/', ':', '@' or spaces"),
        ({"name": "x" * 200}, InvalidInputError, "at most 128"),
        ({"tags": {"bad key": "v"}}, InvalidInputError, "tag key"),
        ({"lineage": [Lineage("nope:1", Relation.TRANSFERRED_FROM)]}, NotFoundError, "no expert named 'nope'"),
    ],
)
def test_bad_publish_arguments_leave_nothing_behind(registry, good, kwargs, error, words):
    before = _counts(registry)
    with pytest.raises(error, match=words):
        registry.publish(good, **kwargs)
    assert _counts(registry) == before


@pytest.mark.parametrize("ref", ["a:b:c", "x:0", "x:-1", "x:1.5", "x@", "@a", ":3", "x y", "a/b:1"])
def test_bad_reference_syntax(registry, ref):
    with pytest.raises(InvalidInputError, match="bad reference"):
        registry.get(ref)


def test_unknown_alias_and_duplicate_alias(registry, good):
    v = registry.publish(good)
    with pytest.raises(NotFoundError, match="no alias 'prod'"):
        registry.get(f"{v.name}@prod")
    registry.alias(v.ref, "prod")
    w = registry.publish(good)
    with pytest.raises(ConflictError, match="already points at"):
        registry.alias(w.ref, "prod")
    with pytest.raises(ConflictError, match="already names model"):
        registry.add_model("gemma3-270m", aliases=["smollm2-135m"])


def test_record_refuses_bad_metrics_without_writing(registry, good):
    v = registry.publish(good)
    before = _counts(registry)
    with pytest.raises(InvalidInputError):
        registry.record(v.ref, ["accuracy=0.5", "accuracy=oops"])
    assert _counts(registry) == before


@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/t2reg", "Connection refused"),
        ("sqlite:////proc/forbidden/registry.db", "database sqlite:////proc/forbidden"),
        ("nosuchdb://x/y", "no SQLAlchemy driver"),
        ("not a url", "not a database URL"),
    ],
)
def test_unreachable_database_is_one_clear_line(tmp_path, url, words):
    with pytest.raises(T2RegError) as info:
        Registry(load_settings(home=tmp_path, database_url=url), create=True)
    message = str(info.value)
    assert words in message and "\n" not in message and "sqlalche.me" not in message


def _foreign_database(backend, tmp_path, request) -> str:
    """A database another application made: one table of its own, no t2reg revision."""
    if backend == "postgres":
        url = request.getfixturevalue("postgres").create_database(f"f_{uuid.uuid4().hex[:12]}")
    else:
        url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (id INTEGER)"))
    engine.dispose()
    return url


def _table_names(url):
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_database_with_foreign_tables_is_not_touched(backend, tmp_path, request):
    url = _foreign_database(backend, tmp_path, request)
    for create in (False, True):
        with pytest.raises(InvalidInputError, match="no t2reg schema revision"):
            Registry(load_settings(home=tmp_path, database_url=url), create=create)
    registry = Registry(load_settings(home=tmp_path, database_url=url), check_schema=False)  # as `t2reg init` opens
    try:
        with pytest.raises(InvalidInputError, match="not a t2reg registry"):
            registry.init()
    finally:
        registry.close()
    assert _table_names(url) == ["accounts"]


@pytest.mark.parametrize("metric, value", [("accuracy", 2), ("accuracy", -5), ("acc_norm", 1.5),
                                           ("accuracy_norm", -0.1), ("exact_match", 1.0001), ("logprob", "1e999")])
def test_scores_out_of_their_range_are_refused_without_writing(registry, good, metric, value):
    v = registry.publish(good)
    before = _counts(registry)
    words = "proportion, from 0 to 1|finite"
    with pytest.raises(InvalidInputError, match=words):
        registry.record(v.ref, [f"gsm8k:{metric}={value}"])
    with pytest.raises(InvalidInputError, match=words):
        registry.publish(good, name="other", metrics=[f"gsm8k:{metric}={value}"])
    with pytest.raises(InvalidInputError, match=words):  # a Metric t2reg made itself passes the same rule
        registry.record_model_evaluation("smollm2-135m", [Metric("gsm8k", metric, float(value))])
    assert _counts(registry) == before


def test_scores_in_range_and_unbounded_metrics_are_taken(registry, good):
    v = registry.publish(good, metrics=["gsm8k:accuracy=0", "gsm8k:acc_norm=1", "gsm8k:logprob=-57.5",
                                        "gsm8k:accumulated_reward=1e6"])
    assert sorted(e.value for e in v.evaluations) == [-57.5, 0.0, 1.0, 1e6]


def test_best_passes_over_proportions_out_of_range_already_stored(registry, good):
    # As a registry written before scores were range-checked may hold them.
    low = registry.publish(good, name="low", metrics=["gsm8k:accuracy=0.25"])
    high = registry.publish(good, name="high", metrics=["gsm8k:accuracy=0.5"])
    with registry.db.session(write=True) as session:
        row = session.scalar(select(EvaluationRow).where(EvaluationRow.version_id == session.scalar(
            select(VersionRow.id).join(ExpertRow).where(ExpertRow.name == high.name))))
        row.value = 1e308
    assert [r.ref for r in registry.best("gsm8k")] == [low.ref]
