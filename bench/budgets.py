"""The measurements behind the demo's budgets (issue 31), from runs already recorded: no model is loaded.

1. Held-out n per row. For a recorded paired comparison (an expert against its base model, both with
   per-question results under one protocol), draw many seeded subsamples of n of the paired questions and
   report, for each n, how often McNemar's p < 0.05 (the power to call the difference significant), the
   median half-width of the difference's 95% interval and its 95th percentile.
2. Training iterations and validation cadence: the validation curve of a recorded training job.

Usage:
  python bench/budgets.py --home REGISTRY_HOME --pair base:smollm2-135m,NAME:VERSION --task arc-easy \
      [--n 100,150,200,300,500] [--draws 2000] [--train-job ID]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="the registry home holding the recorded runs (read only)")
    parser.add_argument("--pair", action="append", default=[], metavar="X,Y",
                        help="two subjects (base:MODEL or NAME:VERSION) scored under one protocol; repeatable")
    parser.add_argument("--task", default="arc-easy")
    parser.add_argument("--n", default="100,150,200,300,500")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--train-job", type=int, action="append", default=[])
    parser.add_argument("--out", help="also write the figures here as JSON")
    args = parser.parse_args()

    from t2reg.registry import Registry
    from t2reg.settings import load_settings

    registry = Registry(load_settings(home=args.home))
    report = {"pairs": [], "training": []}
    for text in args.pair:
        x, y = text.split(",")
        report["pairs"].append(power(registry, x, y, args.task, [int(n) for n in args.n.split(",")], args.draws))
    for job in args.train_job:
        report["training"].append(curve(registry, job))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


def power(registry, x: str, y: str, task: str, sizes: list[int], draws: int) -> dict:
    """Subsampled power and interval width of the recorded comparison of ``x`` and ``y`` on ``task``."""
    from t2reg.adaptation.evaluation.paired import Subject, pair

    rows = _shared_rows(registry, Subject.parse(x), Subject.parse(y), task)
    whole = pair(*rows, x, y)
    diff = np.array([float(b["correct"]) - float(a["correct"]) for a, b in zip(*rows)])
    print(f"{x} vs {y} on {task}: {whole.n} paired questions recorded, difference {whole.delta:+.3f} "
          f"({whole.delta_ci95[0]:+.3f} to {whole.delta_ci95[1]:+.3f}), discordant {whole.only_x} vs {whole.only_y} "
          f"({(whole.only_x + whole.only_y) / whole.n:.1%}), McNemar p {whole.mcnemar_p:.2g}")
    rng = np.random.default_rng(0)
    out = {"x": x, "y": y, "task": task, "recorded_n": whole.n, "delta": whole.delta,
           "discordant": [whole.only_x, whole.only_y], "sizes": []}
    for n in sizes:
        if n > whole.n:
            continue
        significant, halves = 0, []
        for _ in range(draws):
            d = diff[rng.choice(whole.n, n, replace=False)]
            only_x, only_y = int((d < 0).sum()), int((d > 0).sum())
            significant += _mcnemar(only_x, only_y) < 0.05
            halves.append(1.96 * d.std(ddof=1) / math.sqrt(n) if n > 1 else float("inf"))
        row = {"n": n, "power": significant / draws, "half_width_median": float(np.median(halves)),
               "half_width_p95": float(np.percentile(halves, 95))}
        out["sizes"].append(row)
        print(f"  n={n:>4}: p < 0.05 in {row['power']:.1%} of {draws} subsamples; 95% interval +/- "
              f"{row['half_width_median']:.3f} (95th percentile {row['half_width_p95']:.3f})")
    return out


def curve(registry, job_id: int) -> dict:
    """The validation score (and seconds) per iteration of a recorded training job."""
    from t2reg.adaptation.jobs import record_of, spec_of

    job = registry.jobs.get(job_id)
    spec, record = spec_of(job), record_of(job)
    best = record.best_iteration if record else None
    events = [e.data for e in registry.jobs.events(job_id)]
    points = [(e["iteration"], e["validation"]) for e in events if e.get("validation") is not None]
    print(f"training job {job_id} ({spec.iterations} iterations, validation on {spec.validation} "
          f"questions every {spec.eval_every}): " + ", ".join(f"{i}: {v:.2f}" for i, v in points)
          + f"; best iteration {best}")
    return {"job": job_id, "spec": job.spec, "validation": points, "best_iteration": best}


def _shared_rows(registry, x, y, task: str) -> tuple[list[dict], list[dict]]:
    """Both subjects' per-question results on the most questions ``y`` was scored on under one protocol (``x``'s
    read as compare reads them: recorded under it, or cut from a recorded whole-split run)."""
    from t2reg.adaptation.evaluation.paired import recorded_rows
    from t2reg.protocols import Protocol

    best: tuple[list[dict], list[dict]] = ([], [])
    found = registry.model_evaluations(y.model, task) if y.model else registry.get(y.ref).evaluations
    for protocol_id in {e.protocol for e in found if e.task == task and e.results_sha256}:
        spec = registry.protocol(protocol_id).spec
        if spec.get("legacy") or spec.get("reported"):
            continue
        protocol = Protocol.from_dict(spec)
        theirs = recorded_rows(registry, y, protocol, set) or []
        ids = {r["id"] for r in theirs}
        ours = {r["id"]: r for r in recorded_rows(registry, x, protocol, lambda ids=ids: ids) or []}
        shared = [r for r in theirs if r["id"] in ours]
        if len(shared) > len(best[0]):
            best = ([ours[r["id"]] for r in shared], shared)
    if not best[0]:
        raise SystemExit(f"{x} and {y} have no recorded per-question results on shared {task} questions")
    return best


def _mcnemar(only_x: int, only_y: int) -> float:
    from t2reg.stats import mcnemar_exact

    return mcnemar_exact(only_x, only_y)


if __name__ == "__main__":
    main()
