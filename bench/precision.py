"""bfloat16 against float32 on the same questions, in the same process (issue 31).

For each model, the base weights score a seeded sample of test questions by cloze twice: once loaded in
float32 and once in bfloat16 (weights and activations bfloat16, the output projection and log-softmax in
float32, as ``--dtype bfloat16`` runs). The two backends take the questions in alternating chunks of 32,
so both see the same machine load. Reported: the share of questions whose prediction is identical, the
paired difference of accuracies (bootstrap 95% interval, McNemar's exact p), the largest change in an
option's log-likelihood, the time and the arithmetic each dtype asked for, and the matrix-product peak
of each dtype measured in this process.

bfloat16 becomes the demo's default only if predictions agree on >= 99% of questions, the paired
difference is not significant, and it is faster.

Usage: python bench/precision.py [--models smollm2-135m,gemma3-270m] [--task arc-easy] [--n 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 32  # questions per alternation: evaluate() hands the backend 32 questions at a time anyway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--task", default="arc-easy")
    parser.add_argument("--n", type=int, default=300, help="seeded sample of test questions (seed 0)")
    parser.add_argument("--out", default=str(ROOT / ".t2reg-bench" / "precision.json"))
    args = parser.parse_args()

    from apply import setup  # noqa: E402 - the same cached registry as bench/apply.py

    from t2reg.adaptation.reporting.budget import measure_peak
    from t2reg.adaptation.reporting.demo import ensure_weights

    registry, _ = setup()
    data = os.environ.get("T2REG_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    report = {"load_before": os.getloadavg(), "models": {}}
    for model in args.models.split(","):
        ensure_weights(registry, model, print)
        report["models"][model] = compare_dtypes(registry, model, args.task, args.n, Path(data))
    report["threads"] = torch.get_num_threads()  # as open_for chose them for the last model (T2REG_THREADS fixes it)
    report["peak_gflops"] = {d: measure_peak(getattr(torch, d)) / 1e9 for d in ("float32", "bfloat16")}
    report["load_after"] = os.getloadavg()
    print(f"matmul peak, {torch.get_num_threads()} thread(s): float32 {report['peak_gflops']['float32']:.0f}, "
          f"bfloat16 {report['peak_gflops']['bfloat16']:.0f} GFLOP/s; load average {report['load_before'][0]:.1f} "
          f"before, {report['load_after'][0]:.1f} after")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def compare_dtypes(registry, model: str, task_name: str, n: int, data: Path) -> dict:
    from t2reg.adaptation.backends import open_for
    from t2reg.adaptation.evaluation.paired import pair
    from t2reg.adaptation.evaluation.questions import Questions
    from t2reg.adaptation.evaluation.scoring import evaluate
    from t2reg.adaptation.flops import FlopCount
    from t2reg.adaptation.tasks import get_task

    task = get_task(task_name)
    questions = Questions.draw(task, "test", n, 0, data).examples
    backends = {dtype: open_for(registry, model, "hf", dtype=dtype, batch_size=16) for dtype in ("float32", "bfloat16")}
    rows = {dtype: [] for dtype in backends}
    seconds = dict.fromkeys(backends, 0.0)
    counts = {dtype: FlopCount() for dtype in backends}
    for backend in backends.values():
        evaluate(backend, task, questions[:4])  # warm up: oneDNN primitives, caches
    for start in range(0, len(questions), CHUNK):
        chunk = questions[start : start + CHUNK]
        for dtype, backend in backends.items():
            with counts[dtype]:
                began = time.perf_counter()
                rows[dtype] += evaluate(backend, task, chunk).outputs
                seconds[dtype] += time.perf_counter() - began
    paired = pair(rows["float32"], rows["bfloat16"], "float32", "bfloat16")
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(rows["float32"], rows["bfloat16"]))
    drift = max(abs(x - y) for a, b in zip(rows["float32"], rows["bfloat16"])
                for x, y in zip(a["option_logprobs"], b["option_logprobs"]))
    out = {"n": len(questions), "agreement": same / len(questions), "accuracy_float32": paired.accuracy_x,
           "accuracy_bfloat16": paired.accuracy_y, "delta": paired.delta, "delta_ci95": list(paired.delta_ci95),
           "mcnemar_p": paired.mcnemar_p, "only_float32": paired.only_x, "only_bfloat16": paired.only_y,
           "max_option_logprob_change": drift, "seconds": seconds,
           "questions_per_s": {d: len(questions) / s for d, s in seconds.items()},
           "gflop_per_question": {d: c.total / 1e9 / len(questions) for d, c in counts.items()},
           "speed_ratio_bf16_over_fp32": seconds["float32"] / seconds["bfloat16"], "threads": torch.get_num_threads()}
    low, high = out["delta_ci95"]
    print(f"{model} on {len(questions)} {task_name} test questions (seed 0), {torch.get_num_threads()} thread(s):\n"
          f"  predictions identical on {same}/{len(questions)} ({out['agreement']:.1%}); accuracy "
          f"{paired.accuracy_x:.3f} float32, {paired.accuracy_y:.3f} bfloat16, difference {paired.delta:+.3f} "
          f"({low:+.3f} to {high:+.3f}), McNemar p {paired.mcnemar_p:.3f} ({paired.only_x} vs {paired.only_y})\n"
          f"  largest option log-likelihood change {drift:.3f}; float32 {seconds['float32']:.1f} s, bfloat16 "
          f"{seconds['bfloat16']:.1f} s: RATIO bfloat16 speed / float32 {out['speed_ratio_bf16_over_fp32']:.2f}x; "
          f"{out['gflop_per_question']['float32']:.1f} GFLOP asked per question")
    for backend in backends.values():
        backend.close()
    return out


if __name__ == "__main__":
    main()
