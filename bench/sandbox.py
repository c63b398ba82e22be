"""What does isolating and judging generated code cost per scored answer?

Scores the same MBPP-sized answer (a function, three assertions) the way code
tasks do (:func:`judge`: the answer runs in the sandbox and reports its values,
which are compared outside; the reference's values are computed once, before
the timings) under ``namespaces`` isolation (bubblewrap: user, PID and network
namespaces, a control group per run where one can be made) and under the
``weak`` isolation (a plain subprocess with rlimits and an audit hook), and,
for the cost of the new verdict, runs the same program with its assertions in
one interpreter (:func:`run_program`, the old verdict) under ``namespaces``;
interleaved, in this process. Prints the medians and two RATIO lines: the
price of real isolation (namespaces / weak) and of judging outside the program
(judged / in one interpreter), per scored answer.

Usage: python bench/sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from t2reg.adaptation.tasks.datasets import Example
from t2reg.adaptation.tasks.judge import judge
from t2reg.adaptation.tasks.sandbox import Limits, namespaces_plan, per_run_limits, run_program, weak_plan

ANSWER = """
def first_repeated_char(s):
    seen = set()
    for c in s:
        if c in seen:
            return c
        seen.add(c)
    return None
"""

TESTS = """
assert first_repeated_char("abcabc") == "a"
assert first_repeated_char("abc") is None
assert first_repeated_char("123123") == "1"
"""

EXAMPLE = Example("bench/first-repeated-char", "", "", tests=TESTS, solution=ANSWER)


def _timed(run) -> float:
    start = time.perf_counter()
    assert run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    namespaces_plan(), weak_plan()  # probe once, outside the timings
    limits = Limits()
    reference = {isolation: _timed(lambda i=isolation: judge(EXAMPLE, ANSWER, limits, i).passed)
                 for isolation in ("namespaces", "weak")}  # the first judgement also runs the reference
    cases = {
        "judged, namespaces": lambda: judge(EXAMPLE, ANSWER, limits, "namespaces").passed,
        "judged, weak": lambda: judge(EXAMPLE, ANSWER, limits, "weak").passed,
        "one interpreter, namespaces": lambda: run_program(ANSWER + TESTS, limits, "namespaces").passed,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, run in cases.items():
            times[name].append(_timed(run))
    print(f"per-run limits: {per_run_limits()}")
    for name, values in times.items():
        print(f"{name:<28} median {statistics.median(values) * 1000:7.1f} ms   "
              f"p90 {sorted(values)[int(0.9 * len(values))] * 1000:7.1f} ms   ({len(values)} runs)")
    for isolation, seconds in reference.items():
        print(f"first judgement ({isolation}, with the reference's run): {seconds * 1000:.1f} ms")
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"RATIO namespaces / weak: {median['judged, namespaces'] / median['judged, weak']:.2f}x per scored answer")
    print(f"RATIO judged / one interpreter: "
          f"{median['judged, namespaces'] / median['one interpreter, namespaces']:.2f}x per scored answer")


if __name__ == "__main__":
    main()
