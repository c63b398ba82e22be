"""Running one job here: a job that is cancelled or dies under this process says so instead of
returning a result it does not have, and its own error is not masked by the lost claim."""

import pytest

from t2reg.adaptation.jobs import runner
from t2reg.errors import ConflictError
from tests.helpers.jobs import register_test_kind


@pytest.fixture
def kinds():
    added = []

    def add(name, handler):
        added.append(name)
        return register_test_kind(name, handler)()  # the spec of a job of that kind

    yield add
    for name in added:
        runner._KINDS.remove(name)


def _cancel_then(action):
    def handler(context):
        context.registry.jobs.cancel(context.job.id)
        return action(context)

    return handler


def test_a_job_cancelled_while_it_runs_here_raises_a_conflict(registry, kinds):
    spec = kinds("test-cancelled", _cancel_then(lambda context: context.checkpoint({"step": 1}, {"i": 1})))
    claim, job = runner.submit_here(registry, spec)
    with pytest.raises(ConflictError, match=f"job {job.id} stopped here without a result: it is cancelled"):
        runner.run_job(registry, job.id, claim=claim)
    assert registry.jobs.get(job.id).status == "cancelled" and registry.jobs.events(job.id) == []


def test_a_job_cancelled_just_before_it_finishes_stays_cancelled(registry, kinds):
    spec = kinds("test-late-cancel", _cancel_then(lambda context: {"published": "x:1"}))
    claim, job = runner.submit_here(registry, spec)
    with pytest.raises(ConflictError, match="it is cancelled"):
        runner.run_job(registry, job.id, claim=claim)
    assert registry.jobs.get(job.id).result is None


def test_the_handlers_own_error_survives_a_lost_claim(registry, kinds):
    def broken(context):
        raise ValueError("the handler broke")

    spec = kinds("test-broken", _cancel_then(broken))
    claim, job = runner.submit_here(registry, spec)
    with pytest.raises(ValueError, match="the handler broke"):
        runner.run_job(registry, job.id, claim=claim)
    assert registry.jobs.get(job.id).status == "cancelled"


def test_a_job_that_succeeds_returns_its_result(registry, kinds):
    spec = kinds("test-ok", lambda context: {"answer": 42})
    job = runner.submit(registry, spec)
    assert runner.run_job(registry, job.id).result == {"answer": 42}
