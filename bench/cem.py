"""Population evaluation for few-shot search on SmolLM2-135M: batched (factored experts,
one shared pass) vs sequential (weights rewritten per candidate), and what `auto` picks.

Two workloads, population 16 mixtures of 3 experts over all 90 MLP matrices:
  generate  10 GSM8K shots scored by generation (64 new tokens, greedy)
  choice    10 ARC-Easy shots scored by option log-likelihood
Prints candidate evaluations per second for each mode, the RATIO batched /
sequential, and auto's rate over two generations (its first generation
calibrates: two candidates sequentially, the rest batched) against the better
of the two fixed modes. Goal: batched >= 3x on the generation workload, auto
never slower than the better mode.

Uses the registry in ./.t2reg-bench (shared with bench/apply.py).

Usage: python bench/cem.py [--population 16] [--shots 10] [--batch-size 64] [--workloads generate,choice]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--experts", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--workloads", default="generate,choice")
    args = parser.parse_args()

    from apply import setup  # noqa: E402 - the same cached SmolLM2 registry as bench/apply.py

    from t2reg.adaptation.backends import open_backend
    from t2reg.adaptation.search.objective import MixtureScorer
    from t2reg.adaptation.tasks import data_dir, get_task

    registry, spectra = setup()
    root = data_dir(os.environ.get("T2REG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    backend = open_backend("hf", Path(registry.get_model("smollm2-135m").location), batch_size=args.batch_size)
    g = torch.Generator().manual_seed(0)
    vectors = [{n: (1 + 0.3 * torch.randn(spectra[n].S.shape, generator=g)).clamp(min=0.05) for n in spectra.names()}
               for _ in range(args.experts)]
    rng = np.random.default_rng(0)
    generations = [rng.uniform(0, 1, (args.population, args.experts)) for _ in range(2)]
    workloads = {
        "generate": dataclasses.replace(get_task("gsm8k"), max_new_tokens=args.max_new_tokens),
        "choice": get_task("arc-easy"),
    }
    print(f"SmolLM2-135M, {torch.get_num_threads()} threads, population {args.population}, {args.shots} shots, "
          f"{args.experts} experts x {len(spectra.names())} matrices, batch size {args.batch_size}")
    for name in args.workloads.split(","):
        task = workloads[name]
        shots = task.shots(args.shots, 0, root)

        def rate(mode: str, gens, task=task, shots=shots):
            """Candidates per second, the scores, and the scorer (auto's choice and timings)."""
            scorer = MixtureScorer(backend, task, spectra, vectors, "nuclear", (args.experts,), mode=mode)
            start = time.perf_counter()
            scores = [scorer.objective(population, shots) for population in gens]
            return sum(len(p) for p in gens) / (time.perf_counter() - start), scores, scorer

        print(f"\n[{name}] {task.name}, {'generation' if name == 'generate' else 'option log-likelihood'}", flush=True)
        seq_rate, seq_scores, _ = rate("sequential", generations[:1])
        print(f"  sequential  {seq_rate:6.3f} candidates/s", flush=True)
        bat_rate, bat_scores, _ = rate("batched", generations[:1])
        auto_rate, _, auto = rate("auto", generations)
        agree = sum(a[0] == b[0] for a, b in zip(seq_scores[0], bat_scores[0]))
        worst = max(abs(a[1] - b[1]) for a, b in zip(seq_scores[0], bat_scores[0]))
        better = max(seq_rate, bat_rate)
        print(f"  batched     {bat_rate:6.3f} candidates/s   (same accuracy for {agree}/{args.population}; "
              f"max |d log-lik| {worst:.2e})")
        print(f"  auto        {auto_rate:6.3f} candidates/s over 2 generations; chose {auto.mode} "
              f"(calibration s/candidate: " + ", ".join(f"{k} {v:.2f}" for k, v in auto.timings.items()) + ")")
        print(f"  RATIO batched/sequential [{name}]: {bat_rate / seq_rate:.2f}x")
        print(f"  RATIO auto/better-of-two [{name}]: {auto_rate / better:.2f}x")


if __name__ == "__main__":
    main()
