"""The job queue on both databases: claims, heartbeats, checkpoints, cancel, requeue,
and several worker processes sharing one queue without ever running a job twice."""

import subprocess
import sys
import time

import pytest
from sqlalchemy.exc import StatementError

from t2reg.errors import ConflictError, InvalidInputError, NotFoundError
from t2reg.registry.jobs import ClaimLost, JobQueue
from tests.helpers.paths import ROOT



def test_a_job_goes_from_queued_to_succeeded_with_its_events(registry):
    jobs = registry.jobs
    job = jobs.submit("probe", {"task": "gsm8k"})
    assert job.status == "queued" and job.attempts == 0
    claim, claimed = jobs.claim("w1", ["probe"])
    assert claimed.id == job.id and claimed.status == "running" and claim.attempt == 1
    assert jobs.claim("w2", ["probe"]) is None  # nothing else is claimable
    jobs.checkpoint(claim, {"step": 1}, {"loss": 0.5})
    jobs.checkpoint(claim, {"step": 2}, {"loss": 0.25})
    jobs.finish(claim, {"published": "x:1"})
    done = jobs.get(job.id)
    assert (done.status, done.state, done.result, done.events) == ("succeeded", {"step": 2}, {"published": "x:1"}, 2)
    assert [e.data["loss"] for e in jobs.events(job.id)] == [0.5, 0.25]
    assert done.finished_at >= done.started_at >= done.created_at


def test_events_after_a_step_and_step_counts_in_the_listing(registry):
    jobs = registry.jobs
    claim, job = jobs.submit_claimed("probe", {}, "here")
    idle = jobs.submit("probe", {})
    for loss in (0.5, 0.25, 0.125):
        jobs.checkpoint(claim, {}, {"loss": loss})
    assert [(e.seq, e.data["loss"]) for e in jobs.events(job.id, after=1)] == [(2, 0.25), (3, 0.125)]
    assert jobs.events(job.id, after=3) == []
    assert [(j.id, j.events) for j in jobs.list()] == [(idle.id, 0), (job.id, 3)]


def test_a_job_submitted_claimed_is_never_taken_by_a_polling_worker(registry):
    jobs = registry.jobs
    claim, job = jobs.submit_claimed("probe", {"task": "gsm8k"}, "here")
    assert (job.status, job.worker, job.attempts, claim.attempt) == ("running", "here", 1, 1)
    assert jobs.claim("poller") is None
    jobs.checkpoint(claim, {"step": 1}, {"loss": 0.5})
    jobs.finish(claim, {})
    assert jobs.get(job.id).status == "succeeded"


def test_checkpoints_refuse_infinities_on_both_databases(registry):
    # PostgreSQL's json has no Infinity or NaN, so neither store takes them: a slip shows on SQLite too
    jobs = registry.jobs
    claim, job = jobs.submit_claimed("probe", {}, "here")
    with pytest.raises((StatementError, ValueError), match="Out of range float values are not JSON compliant"):
        jobs.checkpoint(claim, {"best": float("-inf")})
    assert jobs.get(job.id).state is None


def test_claims_respect_kinds_and_order(registry):
    jobs = registry.jobs
    first, second = jobs.submit("train", {}), jobs.submit("adapt", {})
    third = jobs.submit("adapt", {})
    assert jobs.claim("w", ["adapt"])[1].id == second.id
    assert jobs.claim("w", ["adapt", "train"])[1].id == first.id
    assert jobs.claim("w", job_id=third.id)[1].id == third.id
    assert [j.id for j in jobs.list(status="running")] == [third.id, second.id, first.id]
    with pytest.raises(InvalidInputError, match="unknown job status"):
        jobs.list(status="done")


def test_cancelling_a_running_job_stops_its_worker_at_the_next_checkpoint(registry):
    jobs = registry.jobs
    job = jobs.submit("probe", {})
    claim, _ = jobs.claim("w1")
    jobs.cancel(job.id)
    with pytest.raises(ClaimLost, match="no longer held by w1 \\(cancelled\\)"):
        jobs.checkpoint(claim, {"step": 9}, {"x": 1})
    assert jobs.get(job.id).state is None and jobs.events(job.id) == []  # nothing written after the cancel
    with pytest.raises(ConflictError, match="already been cancelled"):
        jobs.cancel(job.id)
    with pytest.raises(NotFoundError, match="no job 999"):
        jobs.cancel(999)


def test_a_silent_worker_loses_its_claim_after_the_timeout(registry):
    jobs = JobQueue(registry.db, timeout=0.3)
    job = jobs.submit("probe", {})
    old, _ = jobs.claim("dead-worker")
    jobs.checkpoint(old, {"step": 1}, {"i": 1})
    assert jobs.claim("w2") is None and jobs.held(jobs.get(job.id))  # still fresh
    time.sleep(0.5)
    assert not jobs.held(jobs.get(job.id)) and jobs.get(job.id).status == "running"  # its worker is silent
    new, taken = jobs.claim("w2")
    assert taken.id == job.id and taken.state == {"step": 1} and new.attempt == 2 and taken.worker == "w2"
    with pytest.raises(ClaimLost):
        jobs.checkpoint(old, {"step": 2})
    assert jobs.held(jobs.get(job.id))
    jobs.finish(new, {})
    assert jobs.get(job.id).status == "succeeded" and not jobs.held(jobs.get(job.id))


def test_requeue_keeps_the_checkpoint_and_refuses_live_or_finished_jobs(registry):
    jobs = registry.jobs
    job = jobs.submit("probe", {})
    claim, _ = jobs.claim("w1")
    jobs.checkpoint(claim, {"step": 2})
    with pytest.raises(ConflictError, match="is running on w1 .*force") as refused:
        jobs.requeue(job.id)
    assert refused.value.options == ("force",)  # the CLI words it as its flag
    assert refused.value.render(lambda option: f"--{option}").endswith("take the job over (--force)")
    jobs.fail(claim, "boom")
    assert jobs.get(job.id).error == "boom"
    again = jobs.requeue(job.id)
    assert (again.status, again.state, again.error) == ("queued", {"step": 2}, None)
    claim, _ = jobs.claim("w1")
    jobs.finish(claim, {})
    with pytest.raises(ConflictError, match="already succeeded"):
        jobs.requeue(job.id)


@pytest.mark.slow
def test_worker_processes_sharing_a_queue_never_run_a_job_twice(registry, tmp_path):
    ids = [registry.jobs.submit("probe", {}).id for _ in range(30)]
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.helpers.job_worker", registry.settings.database_url, str(registry.blobs.root),
                               f"worker-{i}", str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for i in range(3)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    go.touch()
    ran = {}
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        ran[f"worker-{i}"] = [int(x) for x in out.split()]
    assert sum(1 for done in ran.values() if done) >= 2  # they really competed
    every = sorted(j for done in ran.values() for j in done)
    assert every == ids  # each job ran exactly once
    for job_id in ids:
        job = registry.jobs.get(job_id)
        events = registry.jobs.events(job_id)
        assert job.status == "succeeded" and job.attempts == 1
        assert {e.data["worker"] for e in events} == {job.result["worker"]} and len(events) == 3
        assert job_id in ran[job.result["worker"]]
