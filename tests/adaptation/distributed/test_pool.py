"""A pool of real Ray actors, each with the tiny model loaded: a generation's candidates handed out one at a
time score exactly as in this process, also when a replica is killed mid-generation (it is replaced, or
dropped past its restart budget); our own errors come back as themselves; a pool with no replica left says
how to continue. The tests share one pool and run in file order (the last ones take its replicas away)."""

import numpy as np
import pytest

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.distributed.pool import ReplicaPool, chunked, even_chunks
from t2reg.adaptation.distributed.replica import Evaluation, ReplicaSetup
from t2reg.adaptation.distributed.scorer import ReplicaScorer
from t2reg.adaptation.distributed.settings import ReplicaSettings
from t2reg.adaptation.distributed.sharding import evaluate_sharded
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.search.objective import MixtureScorer
from t2reg.adaptation.tasks import get_task
from t2reg.errors import ClusterError, InvalidInputError
from tests.helpers.data import require_data
from tests.helpers.replicas import EXPERTS

TASK = get_task("arc-easy")


@pytest.fixture(scope="module")
def problem(world):
    spectra = load_spectra("tiny", world)
    vectors = [world.read_expert(f"{name}:1").vectors for name in EXPERTS]
    shots = TASK.shots(6, 0, require_data())
    population = np.random.default_rng(0).uniform(0, 1, (8, len(EXPERTS)))
    return spectra, vectors, shots, population


@pytest.fixture(scope="module")
def in_process(world, problem):
    spectra, vectors, shots, population = problem
    with open_backend("hf", weights_dir(world, "tiny"), batch_size=4) as backend:
        scores = {mode: MixtureScorer(backend, TASK, spectra, vectors, "nuclear", (3,), mode=mode).objective(population, shots)
                  for mode in ("sequential", "batched")}
    return scores


@pytest.fixture(scope="module")
def pool(ray_cluster, world):
    setup = ReplicaSetup(str(weights_dir(world, "tiny")), str(world.spectra_dir("tiny")), batch_size=4)
    with ReplicaPool(setup, ReplicaSettings(2), restarts=1) as started:
        yield started


def scorer(pool, problem, mode="sequential"):
    spectra, vectors, _, _ = problem
    return ReplicaScorer(pool, TASK, spectra, vectors, "nuclear", (3,), mode=mode)


def test_chunking():
    assert chunked(5, 2) == [range(0, 2), range(2, 4), range(4, 5)] and chunked(0, 3) == []
    assert even_chunks(8, 3) == [range(0, 3), range(3, 6), range(6, 8)]


def test_a_generation_on_two_replicas_scores_exactly_as_in_process(pool, problem, in_process):
    _, _, shots, population = problem
    replicas = scorer(pool, problem)
    assert replicas.mode == "sequential" and scorer(pool, problem, "auto").mode == "sequential"
    assert replicas.objective(population, shots) == in_process["sequential"]
    report = pool.report()
    assert [r["replica"] for r in report] == ["r0", "r1"]
    assert sum(r["units"] for r in report) == len(population) and all(r["units"] >= 1 for r in report)
    assert all(r["per_second"] > 0 and r["model_seconds"] > 0 and r["overhead_per_unit"] is not None for r in report)
    assert report[0]["where"] != report[1]["where"]  # two processes


def test_batched_chunks_agree_with_the_batched_path_here(pool, problem, in_process):
    _, _, shots, population = problem
    got = scorer(pool, problem, "batched").objective(population, shots)
    # each replica batches its own chunk, so rows pad differently: float32 summation order only
    assert [s[0] for s in got] == [s[0] for s in in_process["batched"]]
    assert [s[1] for s in got] == pytest.approx([s[1] for s in in_process["batched"]], abs=1e-4)


def test_an_error_raised_inside_a_replica_arrives_as_itself(pool):
    with pytest.raises(InvalidInputError) as caught:
        evaluate_sharded(pool, Evaluation(TASK, TASK.shots(3, 0, require_data()), mode="nonsense"))
    assert caught.value.options == ("mode",) and "unknown {mode} 'nonsense'" in caught.value.template


def kill_on_first_result(pool, label):
    import ray

    killed = []

    def kill(_replica, _index):
        if not killed:
            slot = next(s for s in pool.slots if s.label == label)
            killed.append(slot.actor)
            ray.kill(slot.actor)  # it is busy with its next candidate now, or gets one right away

    pool.on_result = kill
    return killed


def test_a_replica_killed_mid_generation_is_replaced_and_its_candidate_rerun(pool, problem, in_process):
    _, _, shots, population = problem
    pool.report()
    killed = kill_on_first_result(pool, "r1")
    assert scorer(pool, problem).objective(population, shots) == in_process["sequential"]
    pool.on_result = None
    assert killed and len(pool.lost) == 1 and pool.lost[0].startswith("r1: ")
    report = pool.report()
    assert [(r["replica"], r["alive"], r["restarts"]) for r in report] == [("r0", True, 0), ("r1", True, 1)]
    assert sum(r["units"] for r in report) == len(population)


def test_a_replica_past_its_restart_budget_is_dropped_and_the_others_finish(pool, problem, in_process):
    _, _, shots, population = problem
    kill_on_first_result(pool, "r1")  # r1 has used its one restart
    assert scorer(pool, problem).objective(population, shots) == in_process["sequential"]
    pool.on_result = None
    assert [s.alive for s in pool.slots] == [True, False] and pool.live == 1
    assert "r1 gone" in pool.describe()


def test_with_no_replica_left_the_error_says_how_to_continue(pool, problem):
    _, _, shots, population = problem
    pool.slots[0].restarts = pool.restarts  # no restart left for r0 either
    kill_on_first_result(pool, "r0")
    with pytest.raises(ClusterError) as caught:
        scorer(pool, problem).objective(population, shots)
    message = str(caught.value)
    assert message.startswith("every replica of this job is gone") and message.endswith("from its last completed step")
    assert caught.value.remedy.command == ("jobs", "resume")
    assert pool.live == 0
