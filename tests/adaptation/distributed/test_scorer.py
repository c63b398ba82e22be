"""Few-shot adaptation on replicas, end to end: the CLI's `adapt --replicas 2` follows the in-process
search generation for generation (same scores, same best alpha, same held-out and base results) and
its job events carry per-replica throughput; a job that loses every replica fails with a clear error,
and `jobs resume` continues it to the same result."""

import pytest

from t2reg.adaptation.distributed.pool import ACTOR_PREFIX
from t2reg.adaptation.jobs import run_job, submit_here
from t2reg.adaptation.search.adapt import adapt
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.errors import ClusterError
from tests.cli.test_commands import CLI
from tests.helpers.data import require_data

POOL = "name in (e1,e2,e3)"
BUDGET = dict(shots=4, heldout=8, population=6, elite=0.5, iterations=2, batch_size=4)


def spec(**changes) -> AdaptSpec:
    return AdaptSpec("tiny", "arc-easy", (POOL,), population_eval="sequential", data_dir=str(require_data()),
                     **BUDGET, **changes)


@pytest.fixture(scope="module")
def here(world):
    """The in-process run every replica run must reproduce."""
    return adapt(world, spec(name="here"))


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k not in ("seconds", "replicas")} for row in rows]


def same_result(result: dict, here) -> None:
    assert result["alpha"] == here.alpha and result["best_score"] == here.state.best_score
    assert result["evaluations"] == here.state.evaluations and result["population_eval"] == "sequential"
    assert result["shot_score"] == here.best_shot.score
    for key, expected in (("heldout", here.heldout), ("base", here.base)):
        assert {k: v for k, v in result[key].items() if k != "seconds"} == {
            k: v for k, v in expected.to_dict().items() if k != "seconds"}


def test_adapt_on_two_replicas_follows_the_in_process_search(world, ray_cluster, here, capsys):
    cli = CLI(world.settings.home, capsys)
    options = [f"--{k.replace('_', '-')}={v}" for k, v in BUDGET.items()]
    result = cli.json("adapt", "--model", "tiny", "--task", "arc-easy", "--pool", POOL, *options,
                      "--population-eval", "sequential", "--data-dir", str(require_data()), "--name", "there",
                      "--replicas", "2")
    same_result(result, here)
    job = world.jobs.get(result["job"])
    assert job.spec["replicas"] == 2 and job.status == "succeeded"
    assert without_seconds(job.state["search"]["history"]) == without_seconds(here.state.history)
    events = [e.data for e in world.jobs.events(job.id)]
    assert without_seconds(events) == without_seconds(here.state.history)
    for event in events:  # each generation's event: every replica's share and its candidates per second
        assert [r["replica"] for r in event["replicas"]] == ["r0", "r1"]
        assert sum(r["units"] for r in event["replicas"]) == BUDGET["population"]
        assert all(r["per_second"] > 0 for r in event["replicas"])


def kill_every_replica() -> None:
    import ray

    for name in ray.util.list_named_actors():
        if name.startswith(ACTOR_PREFIX):
            try:
                ray.kill(ray.get_actor(name))
            except ValueError:  # already gone
                pass


def test_a_job_that_loses_every_replica_fails_clearly_and_resumes_to_the_same_result(world, ray_cluster, here,
                                                                                     monkeypatch):
    monkeypatch.setenv("T2REG_RAY_RESTARTS", "0")
    claim, job = submit_here(world, spec(name="resumed", replicas=2))
    with pytest.raises(ClusterError, match="every replica of this job is gone"):
        run_job(world, job.id, claim=claim, on_event=lambda _event: kill_every_replica())  # after generation 1
    failed = world.jobs.get(job.id)
    assert failed.status == "failed" and "continue it from its last completed step" in failed.error
    assert len(world.jobs.events(job.id)) == 1  # generation 1 is checkpointed; generation 2 never was
    world.jobs.requeue(job.id)
    finished = run_job(world, job.id)  # a fresh pool; generation 2 onwards
    same_result(finished.result, here)
    assert without_seconds(e.data for e in world.jobs.events(job.id)) == without_seconds(here.state.history)
