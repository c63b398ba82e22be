"""How multiple choice is scored, how fast, and what the small models really know.

1. Throughput on SmolLM2-135M (a seeded sample of ARC-Easy test questions, the
   same questions for every mode): letter scoring (one forward pass per
   question, one token per option) against cloze scoring with the shared
   prefix (each question's context runs once, its cache serves every option),
   and cloze without sharing (each option's full sequence run on its own, as a
   naive harness would). Goal: cloze <= 2x the letter pass's time.
2. Reference accuracies: SmolLM2-135M and Gemma-3-270M (base weights) on the
   whole ARC-Easy and ARC-Challenge test splits in cloze, and in letter scoring
   (the whole splits too, or a seeded sample with --letter-n), each beside
   its constant baseline (always the most common right answer) and the share
   of its most frequent prediction. Every run is recorded in the bench
   registry (./.t2reg-bench) under its protocol and reused on a rerun.

Usage: python bench/evaluation.py [--throughput 200] [--models smollm2-135m,gemma3-270m] [--letter-n 500] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--throughput", type=int, default=200,
                        help="questions in the throughput sample (0: keep the figures the last run wrote)")
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--tasks", default="arc-easy,arc-challenge")
    parser.add_argument("--letter-n", type=int, default=0,
                        help="letter scoring on a seeded sample of this many questions (0: the whole split, as cloze)")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--out", default=str(ROOT / ".t2reg-bench" / "evaluation.json"))
    args = parser.parse_args()

    from apply import setup  # noqa: E402 - the same cached SmolLM2 registry as bench/apply.py

    registry, _ = setup()
    data = os.environ.get("T2REG_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    out = Path(args.out)
    earlier = json.loads(out.read_text()) if out.is_file() else {}
    report = {"throughput": throughput(registry, data, args.throughput) if args.throughput else earlier.get("throughput")}
    if not args.skip_accuracy:
        report["accuracy"] = accuracy(registry, data, args.models.split(","), args.tasks.split(","),
                                      args.letter_n or None)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


def throughput(registry, data: str, n: int) -> dict:
    from t2reg.adaptation.backends import open_for
    from t2reg.adaptation.evaluation.questions import Questions
    from t2reg.adaptation.evaluation.scoring import evaluate
    from t2reg.adaptation.tasks import get_task

    task = get_task("arc-easy")
    questions = Questions.draw(task, "test", n, 0, Path(data))
    with open_for(registry, "smollm2-135m", "hf", batch_size=16) as backend:
        evaluate(backend, task, questions.examples[:8], mode="cloze")  # warm up
        times, results = {}, {}
        for mode in ("letter", "cloze"):
            start = time.perf_counter()
            results[mode] = evaluate(backend, task, questions.examples, mode=mode)
            times[mode] = time.perf_counter() - start
        start = time.perf_counter()
        unshared = unshared_cloze(backend, task, questions.examples)
        times["cloze, no shared prefix"] = time.perf_counter() - start
    worst = max(abs(a - b) for row, ref in zip(results["cloze"].outputs, unshared)
                for a, b in zip(row["option_logprobs"], ref))
    print(f"SmolLM2-135M, {torch.get_num_threads()} threads, {n} ARC-Easy test questions (seed 0), batch 16")
    for mode, seconds in times.items():
        print(f"  {mode:<24} {n / seconds:7.2f} questions/s ({seconds:.1f} s)")
    print(f"  shared and unshared cloze agree to {worst:.1e} in every option's log-likelihood")
    ratio = times["cloze"] / times["letter"]
    print(f"RATIO cloze time / letter time: {ratio:.2f}x (goal <= 2x)")
    print(f"RATIO unshared / shared cloze time: {times['cloze, no shared prefix'] / times['cloze']:.2f}x")
    return {"n": n, "seconds": times, "cloze_over_letter": ratio, "max_logprob_difference": worst}


def unshared_cloze(backend, task, examples) -> list[list[float]]:
    """The reference: every option's context + continuation as its own row of a padded batch."""
    out = []
    for start in range(0, len(examples), 4):
        batch = examples[start : start + 4]
        pairs = [backend.split_continuation(task.cloze_prompt(ex), f" {text}") for ex in batch for text in ex.choices]
        keep = max(len(k) for _, k in pairs) + 1
        with torch.no_grad():
            ids, mask = backend.pad([c + k for c, k in pairs])
            logprobs = torch.log_softmax(backend.logits(ids, mask, keep), -1)
        totals = [float(logprobs[r, keep - len(k) - 1 : keep - 1][torch.arange(len(k)), torch.tensor(k)].sum())
                  for r, (_, k) in enumerate(pairs)]
        for ex in batch:
            out.append(totals[: len(ex.choices)])
            totals = totals[len(ex.choices):]
    return out


def accuracy(registry, data: str, models: list[str], tasks: list[str], letter_n: int | None) -> list[dict]:
    from t2reg.adaptation.evaluation.runs import run_evaluation
    from t2reg.adaptation.evaluation.spec import EvalSpec

    rows = []
    print(f"\n{'model':<14}{'task':<15}{'mode':<8}{'n':>6}{'accuracy':>10}{'acc_norm':>10}{'constant':>10}"
          f"{'top pick':>10}  seconds")
    for model in models:
        ensure_model(registry, model)
    # Cloze first, every model and task: it is the reference; letter scoring shows the letter prior.
    for mode, limit in (("cloze", None), ("letter", letter_n)):
        for model, task in itertools.product(models, tasks):
            spec = EvalSpec(task, base=model, mode=mode, limit=limit, data_dir=data)
            start = time.perf_counter()
            result = recorded(registry, spec) or run_evaluation(registry, spec).result
            seconds = time.perf_counter() - start
            baseline = result.constant_baseline()
            answer, constant = baseline.answer, baseline.accuracy
            histogram = result.prediction_histogram()
            top = max(histogram.values()) / result.n
            norm = "-" if result.score_norm is None else f"{result.score_norm:.3f}"
            print(f"{model:<14}{task:<15}{mode:<8}{result.n:>6}{result.score:>10.3f}{norm:>10}"
                  f"{constant:>10.3f}{top:>10.2f}  {seconds:.0f}", flush=True)
            rows.append({"model": model, "task": task, "mode": mode, "n": result.n, "accuracy": result.score,
                         "interval95": list(result.interval), "accuracy_norm": result.score_norm,
                         "constant_baseline": constant, "constant_answer": answer,
                         "prediction_histogram": histogram, "protocol": result.protocol.id,
                         "seconds": seconds})
    return rows


def recorded(registry, spec):
    """The spec's evaluation as an earlier run recorded it (with its per-question results), if one did."""
    from t2reg.adaptation.evaluation.results import EvalResult
    from t2reg.adaptation.evaluation.runs import questions_for
    from t2reg.adaptation.evaluation.scoring import resolve_mode

    questions = questions_for(spec)
    mode = resolve_mode(questions.task, spec.mode)
    protocol = questions.protocol(mode)
    found = registry.latest_measured(spec.task, protocol.id, model=spec.base)
    if found is None:
        return None
    rows = registry.evaluation_results(found.results_sha256)
    return EvalResult.from_outputs(spec.task, spec.split, "accuracy", mode, rows, 0.0, protocol)


def ensure_model(registry, model: str) -> None:
    from t2reg.adaptation.models import decompose_model
    from t2reg.adaptation.reporting.demo import ensure_weights

    ensure_weights(registry, model)
    decompose_model(registry, model)


if __name__ == "__main__":
    main()
