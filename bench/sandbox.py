"""What does isolating generated code cost per run?

Scores the same MBPP-sized program (a function and three assertions) under
``namespaces`` isolation (bubblewrap: user, PID and network namespaces) and
under the ``weak`` isolation (a plain subprocess with rlimits and an audit
hook), interleaved, in this process. Prints the medians and a RATIO line
(namespaces / weak): the price of real isolation per scored answer.

Usage: python bench/sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from t2reg.adaptation.tasks.sandbox import Limits, namespaces_plan, run_program, weak_plan

PROGRAM = """
def first_repeated_char(s):
    seen = set()
    for c in s:
        if c in seen:
            return c
        seen.add(c)
    return None

assert first_repeated_char("abcabc") == "a"
assert first_repeated_char("abc") is None
assert first_repeated_char("123123") == "1"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    namespaces_plan(), weak_plan()  # probe once, outside the timings
    limits = Limits()
    times: dict[str, list[float]] = {"namespaces": [], "weak": []}
    for _ in range(args.runs):
        for isolation in times:
            start = time.perf_counter()
            result = run_program(PROGRAM, limits, isolation=isolation)
            times[isolation].append(time.perf_counter() - start)
            assert result.passed, result.stderr
    for isolation, values in times.items():
        print(f"{isolation:<11} median {statistics.median(values) * 1000:7.1f} ms   "
              f"p90 {sorted(values)[int(0.9 * len(values))] * 1000:7.1f} ms   ({len(values)} runs)")
    ratio = statistics.median(times["namespaces"]) / statistics.median(times["weak"])
    print(f"RATIO namespaces / weak: {ratio:.2f}x per scored program")


if __name__ == "__main__":
    main()
