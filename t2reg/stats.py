"""The statistics every reported number rests on.

* :func:`wilson_interval`: a 95% interval for one proportion (sane at 0 and n).
* :func:`mcnemar_exact`: are two conditions on the same questions different? (exact binomial test on
  the questions where exactly one of them is right).
* :func:`paired_bootstrap`: an interval for the mean difference of paired per-question values.
* :func:`constant_baseline`: the accuracy of always giving the most common right answer.

Two conditions scored on the same questions are compared paired, never by
overlapping two separate intervals: the pairing removes the variation between
questions, which is most of it.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # At 0 and n the exact bound is 0 (or 1); floating point would leave a hair's breadth above it.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def mcnemar_exact(only_x: int, only_y: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``only_x`` questions X got right and Y wrong, ``only_y`` the reverse. Under
    the null each discordant question is a fair coin, so the p-value is twice the
    smaller binomial tail (capped at 1); no discordance at all gives p = 1.
    """
    n = only_x + only_y
    if n == 0:
        return 1.0
    k = min(only_x, only_y)
    tail = sum(math.comb(n, i) for i in range(k + 1))  # exact integers: no underflow at any n
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap(differences: Sequence[float], resamples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of per-question ``differences`` (y - x), resampling questions."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // d.size)  # bounded memory: chunk x n indices at a time
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def constant_baseline(answers: Sequence[Hashable]) -> tuple[Hashable | None, float]:
    """The most common right answer and the accuracy of always giving it."""
    if not answers:
        return None, 0.0
    answer, count = Counter(answers).most_common(1)[0]
    return answer, count / len(answers)
