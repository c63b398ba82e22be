"""Scale-out on Ray (issue 19): one job's work spread over model replicas, against one process.

Two workloads on SmolLM2-135M-Instruct (the bench registry in ./.t2reg-bench, shared with apply.py):
  cem   CEM generations: a population of mixtures of 3 experts over all 90 MLP matrices, each scored on
        ARC-Easy shots by option log-likelihood on the exact path (weights rewritten per candidate),
        one candidate per call to whichever replica is free
  eval  the base model on ARC-Easy test questions, sharded over the replicas (whole batches per shard)

Each runs in this process with --threads-here threads (default 2: the whole of this 2-core machine), once
before the replica runs and once after (the machine is shared and its load drifts: the reference is the
mean, and the load average is printed beside every run), and on 1, 2, ... replicas of --threads threads
each (default 1). Every replica run is checked against the in-process run: the same scores for every
candidate, the same answer for every question. Printed:
candidates/s and questions/s, the RATIO of each replica count against this process and against one
replica, the time to start the replicas (each loads the model once), and the overhead per candidate,
i.e. time a replica's slot spends not in the model: per call (round trip minus the replica's own
time) and over the whole generation (replicas x wall minus model time, so idle tails count too).

On a machine with GPUs every replica takes one device (the in-process run uses one too), so
--replicas 1,2,4,8 measures scaling per device.

Usage: python bench/ray_scale.py [--replicas 1,2] [--threads 1] [--threads-here 2] [--population 8]
                                 [--generations 2] [--shots 6] [--questions 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per replica")
    parser.add_argument("--threads-here", type=int, default=2, help="CPU threads of the in-process reference")
    parser.add_argument("--control-threads", type=int, default=1,
                        help="also run in process with this many threads at the end (0: skip), to tell what "
                             "the replicas gain from what a thread count costs on a busy machine")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--experts", type=int, default=3)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    counts = [int(c) for c in args.replicas.split(",")]

    from apply import setup  # noqa: E402 - the same cached SmolLM2 registry as bench/apply.py

    from t2reg.adaptation.backends import open_backend
    from t2reg.adaptation.distributed.cluster import start_local_runtime
    from t2reg.adaptation.distributed.pool import ReplicaPool
    from t2reg.adaptation.distributed.replica import Evaluation, ReplicaSetup
    from t2reg.adaptation.distributed.scorer import ReplicaScorer
    from t2reg.adaptation.distributed.settings import ReplicaSettings
    from t2reg.adaptation.distributed.sharding import evaluate_sharded
    from t2reg.adaptation.evaluation.scoring import evaluate
    from t2reg.adaptation.search.objective import MixtureScorer
    from t2reg.adaptation.tasks import data_dir, get_task, sample

    registry, spectra = setup()
    model_dir = Path(registry.get_model("smollm2-135m").location)
    root = data_dir(os.environ.get("T2REG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    task = get_task("arc-easy")
    shots = task.shots(args.shots, 0, root)
    questions = sample(task.examples("test", root), args.questions, seed=0)
    g = torch.Generator().manual_seed(0)
    vectors = [{n: (1 + 0.3 * torch.randn(spectra[n].S.shape, generator=g)).clamp(min=0.05).numpy()
                for n in spectra.names()} for _ in range(args.experts)]
    rng = np.random.default_rng(0)
    warmup = rng.uniform(0, 1, (2, args.experts))
    generations = [rng.uniform(0, 1, (args.population, args.experts)) for _ in range(args.generations)]
    candidates = args.population * args.generations
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"SmolLM2-135M on {device}: {args.generations} generations x {args.population} candidates "
          f"({args.experts} experts x {len(spectra.names())} matrices, {args.shots} ARC-Easy shots, exact path); "
          f"{len(questions)} ARC-Easy questions; batch size {args.batch_size}", flush=True)

    # -- in this process: before the replica runs and again after them (this machine is shared, and its
    # load drifts; the reference is the mean of the two) ---------------------------------------------
    def in_process(label: str, threads: int = args.threads_here):
        torch.set_num_threads(threads)
        with open_backend("hf", model_dir, batch_size=args.batch_size) as backend:
            here = MixtureScorer(backend, task, spectra, vectors, "nuclear", (args.experts,), mode="sequential")
            here.objective(warmup, shots)
            start = time.perf_counter()
            scores = [here.objective(population, shots) for population in generations]
            cem = candidates / (time.perf_counter() - start)
            evaluate(backend, task, questions[:4])
            start = time.perf_counter()
            outputs = evaluate(backend, task, questions).outputs
            rate = len(questions) / (time.perf_counter() - start)
        print(f"\nin process ({label}), {threads} thread(s): {cem:.3f} candidates/s, {rate:.2f} questions/s "
              f"[load average {os.getloadavg()[0]:.1f}]", flush=True)
        return scores, outputs, cem, rate

    reference, answers, cem_before, eval_before = in_process("before")

    # -- on replicas --------------------------------------------------------------------------------
    start_local_runtime(max(os.cpu_count() or 1, max(counts) * args.threads))
    setup_ = ReplicaSetup(str(model_dir), str(registry.spectra_dir("smollm2-135m")), batch_size=args.batch_size)
    rates: dict[int, tuple[float, float]] = {}
    for count in counts:
        started = time.perf_counter()
        with ReplicaPool(setup_, ReplicaSettings(count, threads=args.threads)) as pool:
            start_s = time.perf_counter() - started
            scorer = ReplicaScorer(pool, task, spectra, vectors, "nuclear", (args.experts,), mode="sequential")
            scorer.objective(warmup, shots)  # each replica's first forward pass, as above
            pool.report()
            start = time.perf_counter()
            got = [scorer.objective(population, shots) for population in generations]
            wall = time.perf_counter() - start
            report = pool.report()
            evaluate_sharded(pool, Evaluation(task, questions[:4]))
            start = time.perf_counter()
            sharded = evaluate_sharded(pool, Evaluation(task, questions)).outputs
            eval_rate = len(questions) / (time.perf_counter() - start)
        cem_rate = candidates / wall
        rates[count] = (cem_rate, eval_rate)
        model_s = sum(r["model_seconds"] for r in report)
        per_call = [r["overhead_per_unit"] for r in report if r["overhead_per_unit"] is not None]
        print(f"\n{count} replica(s) x {args.threads} thread(s) (started in {start_s:.1f} s, model loaded once each) "
              f"[load average {os.getloadavg()[0]:.1f}]")
        print(f"  cem   {cem_rate:.3f} candidates/s  (" + ", ".join(f"{r['replica']} {r['units']} cand "
              f"{r['per_second']:.3f}/s" for r in report) + f"); same scores: {'yes' if got == reference else 'NO'}")
        print(f"  eval  {eval_rate:.2f} questions/s; same answers: {'yes' if sharded == answers else 'NO'}")
        print(f"  overhead per candidate: {1000 * float(np.mean(per_call)):.1f} ms per call (round trip - model), "
              f"{1000 * (count * wall - model_s) / candidates:.1f} ms over the generation "
              f"(of {1000 * model_s / candidates:.0f} ms in the model)", flush=True)

    again, answers_again, cem_after, eval_after = in_process("after")
    assert again == reference and answers_again == answers  # the reference itself is reproducible
    cem_here, eval_here = (cem_before + cem_after) / 2, (eval_before + eval_after) / 2
    print(f"\nreference (mean of the two in-process runs): {cem_here:.3f} candidates/s, {eval_here:.2f} questions/s")
    for count, (cem_rate, eval_rate) in rates.items():
        print(f"RATIO cem  {count} replica(s) / in process: {cem_rate / cem_here:.2f}x")
        print(f"RATIO eval {count} replica(s) / in process: {eval_rate / eval_here:.2f}x")
    if args.control_threads:
        _, _, cem_control, eval_control = in_process("control", args.control_threads)
        for count, (cem_rate, eval_rate) in rates.items():
            print(f"RATIO cem  {count} replica(s) / in process with {args.control_threads} thread(s): "
                  f"{cem_rate / cem_control:.2f}x; eval {eval_rate / eval_control:.2f}x")
    if 1 in rates:
        for count in counts:
            if count != 1:
                print(f"RATIO scaling {count} / 1 replica: cem {rates[count][0] / rates[1][0]:.2f}x, "
                      f"eval {rates[count][1] / rates[1][1]:.2f}x")


if __name__ == "__main__":
    main()
