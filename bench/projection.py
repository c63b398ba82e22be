"""How fast does projection accumulate its moments, and how exact is it?

``transfer.projection.Moments.add`` (one batch's products in float32 through torch, summed over batches in
float64) against the routine before issue 31 (numpy, float64 throughout), on batches shaped like a SmolLM2
projection's (about 400 aligned positions a batch, 576-wide coordinates), each batch right after a torch
matrix product the size of one of a forward pass's, as in a real run (numpy's BLAS threads were slow there,
started beside torch's). Alternating batch by batch in one process, so a busy machine slows both alike. Accuracy: the largest relative difference of the accumulated
Σ b bᵀ against the float64 routine.

Usage: python bench/projection.py [--batches 60] [--positions 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from t2reg.transfer.projection import Moments


def reference_add(m: Moments, b: np.ndarray, c: np.ndarray, cm: np.ndarray) -> None:
    """The float64 numpy routine the bench compares against (transfer/projection.py before issue 31)."""
    b, c, cm = (np.asarray(x, dtype=np.float64) for x in (b, c, cm))
    m.n += len(b)
    m.sum_b += b.sum(0)
    m.sum_c += c.sum(0)
    m.bb += b.T @ b
    m.cb += c.T @ b
    m.cc += (c * c).sum(0)
    m.cb_mismatched += cm.T @ b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--positions", type=int, default=400)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    rank = 576
    forward = torch.randn(args.positions, 1536, generator=generator), torch.randn(1536, 576, generator=generator)
    new, old = Moments.zeros(rank, rank), Moments.zeros(rank, rank)
    spent = {"new": 0.0, "old": 0.0}
    for _ in range(args.batches):
        # coordinates with a mean far from zero in a few directions, as LLM activations have
        b = (torch.randn(args.positions, rank, generator=generator) + 3 * (torch.arange(rank) < 8)).numpy()
        c = (torch.randn(args.positions, rank, generator=generator) + b[:, ::-1] * 0.5).numpy()
        cm = c[np.random.default_rng(0).permutation(len(c))]
        for label in ("new", "old"):
            forward[0] @ forward[1]  # torch's threads busy just before, as after a model's forward pass
            start = time.perf_counter()
            if label == "new":
                new.add(b, c, cm)
            else:
                reference_add(old, b, c, cm)
            spent[label] += time.perf_counter() - start
    error = float(np.abs(new.bb - old.bb).max() / np.abs(old.bb).max())
    print(f"{args.batches} batches of {args.positions} positions, {rank}-wide coordinates, {torch.get_num_threads()} "
          f"threads")
    print(f"  float64 numpy (before): {spent['old'] / args.batches * 1e3:.1f} ms a batch")
    print(f"  float32 torch (now):    {spent['new'] / args.batches * 1e3:.1f} ms a batch")
    print(f"  RATIO before / now: {spent['old'] / spent['new']:.2f}x; largest relative difference of Σ b bᵀ: "
          f"{error:.1e}")


if __name__ == "__main__":
    main()
