"""How much of cloze scoring's arithmetic is padding: batches in sample order (t2reg before issue 31)
against batches sorted by length (now), counted in tokens with the model's own tokenizer.

Cloze runs each question's context once (left-padded to the batch's longest) and then every option's
continuation but its last token on top of it (right-padded). Before, 16 questions in sample order made
a batch and all their options one continuation pass; now evaluation hands the backend ``--call``
questions at a time, the backend sorts a call's contexts longest first and runs the continuations
longest first, ``batch_size`` rows per pass. Token counts are exact; the arithmetic of the linear layers
is proportional to them.

Usage: python bench/padding.py [--model smollm2-135m] [--task arc-easy] [--n 500] [--batch 16] [--call 32,64,128]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="arc-easy")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--call", default="32,64,128", help="questions per call to the backend, to compare")
    args = parser.parse_args()

    from apply import setup  # noqa: E402 - the same cached registry as bench/apply.py

    from t2reg.adaptation.backends import open_for
    from t2reg.adaptation.evaluation.questions import Questions
    from t2reg.adaptation.reporting.demo import ensure_weights
    from t2reg.adaptation.tasks import get_task

    registry, _ = setup()
    task = get_task(args.task)
    data = Path(os.environ.get("T2REG_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    questions = Questions.draw(task, "test", args.n, 0, data).examples
    ensure_weights(registry, args.model)
    items = []
    with open_for(registry, args.model, "hf") as backend:  # its tokenisation rule, <bos> included
        for ex in questions:
            context = task.cloze_prompt(ex)
            pairs = [backend.split_continuation(context, f" {text}") for text in ex.choices]
            items.append((len(pairs[0][0]), [len(cont) - 1 for _, cont in pairs if len(cont) > 1]))
    real = sum(c for c, _ in items) + sum(sum(t) for _, t in items)
    before = _asked(items, args.batch, None)
    print(f"{args.model}, {len(items)} {args.task} test questions (seed 0), batches of {args.batch}: "
          f"{real} real tokens")
    rows = [("sample order, one continuation pass", before)]
    rows += [(f"sorted in calls of {call}", _asked(items, args.batch, int(call))) for call in args.call.split(",")]
    for label, (contexts, tails) in rows:
        print(f"  {label:<36} contexts {contexts:>6} tokens ({contexts / sum(c for c, _ in items):.2f}x), "
              f"continuations {tails:>6} ({tails / sum(sum(t) for _, t in items):.2f}x), "
              f"all {contexts + tails:>6} ({(contexts + tails) / real:.2f}x the real tokens); "
              f"RATIO before / this {sum(before) / (contexts + tails):.2f}x")


def _asked(items: list[tuple[int, list[int]]], batch: int, call: int | None) -> tuple[int, int]:
    """Tokens asked of the model (padding included) for contexts and for continuations: in sample order
    (``call`` None), or sorted within each call of ``call`` questions as the backend does now."""
    contexts = tails = 0
    calls = [items] if call is None else [items[i : i + call] for i in range(0, len(items), call)]
    for part in calls:
        order = part if call is None else sorted(part, key=lambda item: -item[0])
        for start in range(0, len(order), batch):
            group = order[start : start + batch]
            contexts += max(c for c, _ in group) * len(group)
            rows = sorted((t for _, ts in group for t in ts), reverse=True)
            passes = [rows] if call is None else [rows[i : i + batch] for i in range(0, len(rows), batch)]
            tails += sum(max(p) * len(p) for p in passes if p)
    return contexts, tails


if __name__ == "__main__":
    main()
