"""How long does the vllm backend take from a process's start to its first answer on a CPU?

vLLM's engine core runs in a process of its own by default; on CPUs t2reg runs it in the calling process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set by the vllm backend where there is no GPU). Each start is a fresh
interpreter (that is the cost being measured), so this parent times children, alternating the two settings
(``--rounds`` times each) so that a busy machine slows both alike, and reports the medians and their ratio.

The model is the bench registry's SmolLM2-135M conversion (./.t2reg-bench; bench/apply.py makes it).

Usage: python bench/vllm_start.py [--rounds 3] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / ".t2reg-bench" / "models" / "smollm2-135m"
SETTINGS = {"engine core in its own process (vLLM's default)": "1", "engine core in this process (t2reg on CPUs)": "0"}


def child(model_dir: str) -> None:
    from t2reg.adaptation.backends import GenerationRequest, Sampling, open_backend

    backend = open_backend("vllm", Path(model_dir))
    answer = backend.generate([GenerationRequest(backend.render("What is 2 + 2?"), Sampling(12))])[0]
    assert answer.strip(), "an empty answer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-dir", default=str(MODEL))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.model_dir)
    seconds: dict[str, list[float]] = {label: [] for label in SETTINGS}
    for _ in range(args.rounds):
        for label, value in SETTINGS.items():
            env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": value, "VLLM_CPU_KVCACHE_SPACE": "1"}
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--child", "--model-dir", args.model_dir], env=env, check=True,
                           capture_output=True)
            seconds[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(values) for label, values in seconds.items()}
    for label, values in seconds.items():
        print(f"  {label:<50} median {medians[label]:5.1f} s  ({', '.join(f'{v:.1f}' for v in values)})")
    before, now = medians.values()
    print(f"  RATIO own process / in process: {before / now:.2f}x")


if __name__ == "__main__":
    main()
