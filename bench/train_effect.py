"""Science check for SVF training: does a REINFORCE-trained expert help SmolLM2-135M-Instruct on ARC-Easy?

`t2reg train` itself (the library call, as a job in the ./.t2reg-bench registry):
train split for training, validation split for choosing the checkpoint, test
split for the report. Prints the trained expert's test accuracy beside the base
model's on the same questions, with n and Wilson 95% intervals, and the CPU time
used. Scores are option-letter accuracy by log-likelihood. Reported whichever way
it goes.

Usage: python bench/train_effect.py [--iterations 20] [--batch-size 16] [--validation 64] [--test 300]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--validation", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--kl", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from apply import setup  # noqa: E402 - the same cached SmolLM2 registry as bench/apply.py

    from t2reg.adaptation.jobs import run_job, submit
    from t2reg.adaptation.training.spec import TrainSpec

    registry, _ = setup()
    data = os.environ.get("T2REG_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    spec = TrainSpec("smollm2-135m", "arc-easy", iterations=args.iterations, batch_size=args.batch_size,
                     validation=args.validation, eval_every=args.eval_every, heldout=args.test, lr=args.lr,
                     kl=args.kl, seed=args.seed, data_dir=data, name="arc-easy-smollm2-135m-bench")
    job = submit(registry, spec)
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    done = run_job(registry, job.id, on_event=lambda e: print(
        f"  iteration {e['iteration']:3d}  reward {e['reward']:+.3f}  kl {e['kl']:.2e}"
        + (f"  validation {e['validation']:.3f}" if "validation" in e else ""), flush=True))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    result = done.result
    print(f"\nSmolLM2-135M-Instruct, ARC-Easy, {args.iterations} iterations x {args.batch_size}, lr {args.lr}, "
          f"KL {args.kl}; best iteration {result['best_iteration']} (validation n={result['validation']['n']})")
    for label in ("base", "test"):
        r = result[label]
        low, high = r["interval95"]
        name = "trained" if label == "test" else "base"
        print(f"  {name:<8} test accuracy {r['score']:.3f}  (95% CI {low:.3f}-{high:.3f}, n={r['n']})")
    print(f"  published {result['published']} (job {done.id}); wall {time.perf_counter() - wall:.0f} s, "
          f"CPU {cpu_seconds:.0f} s")
    print(f"RATIO trained/base test accuracy: {result['test']['score'] / max(result['base']['score'], 1e-9):.3f}")


if __name__ == "__main__":
    main()
