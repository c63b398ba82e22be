"""Replica settings on the specs: checked by name before anything runs, carried as JSON in the job row."""

import pickle

import pytest

from t2reg.adaptation.distributed.settings import ReplicaSettings, replica_settings
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.errors import InvalidInputError, NotFoundError


def adapt_spec(**changes) -> AdaptSpec:
    return AdaptSpec("tiny", "arc-easy", ("model=tiny",), **changes)


def test_without_replicas_a_spec_runs_in_this_process():
    assert replica_settings(adapt_spec()) is None
    assert replica_settings(EvalSpec("arc-easy", base="tiny")) is None


def test_replica_settings_round_trip_through_the_job_row():
    spec = adapt_spec(replicas=4, ray_address="ray://head:10001", threads=2)
    spec.validate()
    assert AdaptSpec.from_dict(spec.to_dict()) == spec
    assert replica_settings(spec) == ReplicaSettings(4, "ray://head:10001", 2)
    assert replica_settings(spec).cpus == 8
    assert replica_settings(EvalSpec("arc-easy", base="tiny", replicas=2)) == ReplicaSettings(2, None, 1)


@pytest.mark.parametrize("changes, words, options", [
    ({"replicas": 0}, "replicas must be at least 1", ["replicas"]),
    ({"replicas": 2, "threads": 0}, "threads must be at least 1", ["threads"]),
    ({"threads": 2}, "threads only applies with replicas", ["threads", "replicas"]),
    ({"ray_address": "ray://head:10001"}, "ray_address only applies with replicas", ["ray_address", "replicas"]),
    ({"replicas": 2, "backend": "vllm"}, "replicas host the hf backend, not 'vllm'", ["replicas"]),
])
def test_bad_replica_settings_are_refused_by_name(changes, words, options):
    for spec in (adapt_spec(**changes), EvalSpec("arc-easy", base="tiny", **changes)):
        with pytest.raises(InvalidInputError) as caught:
            spec.validate()
        assert words in str(caught.value) and list(caught.value.options) == options


def test_t2reg_errors_keep_their_class_and_options_across_processes():
    # A replica's error reaches the job through pickling (Ray's transport): it must stay the same error.
    for error in (InvalidInputError("{limit} must be at least 1", options=["limit"]), NotFoundError("no model 'x'")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and back.options == error.options
        assert back.render(lambda o: f"--{o}") == error.render(lambda o: f"--{o}")


def test_a_workers_replica_settings_reach_the_specs_that_have_them():
    from t2reg.adaptation.jobs.runner import with_overrides
    from t2reg.adaptation.training.spec import TrainSpec

    overrides = {"replicas": 4, "ray_address": None, "threads": 2}
    assert with_overrides(adapt_spec(), overrides) == adapt_spec(replicas=4, threads=2)
    assert with_overrides(adapt_spec(replicas=2), {"replicas": None}) == adapt_spec(replicas=2)
    train = TrainSpec("tiny", "arc-easy")
    assert with_overrides(train, overrides) is train  # training runs in one process
    with pytest.raises(InvalidInputError, match="replicas host the hf backend"):
        with_overrides(adapt_spec(backend="vllm"), overrides)
