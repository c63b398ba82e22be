"""A time budget you can see: each step's wall time, the arithmetic it asked for, and how close to the
machine's measured peak it ran.

The arithmetic is :class:`~t2reg.adaptation.flops.FlopCount`'s (linear layers forward and backward,
weight rebuilds, padding included: what was asked of the hardware). :func:`measure_peak` times a matrix
product of the demo's typical shape in this process with the threads torch uses now, so a step's
"fraction of peak" compares it with what this machine does under today's load. A step far below the
others is doing something other than arithmetic: a bug to find.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from t2reg.adaptation.flops import FlopCount

PEAK_SHAPE = (512, 576, 1536)  # rows x in x out: a batch of tokens through one of SmolLM2's MLP matrices


def measure_peak(dtype: torch.dtype = torch.float32, seconds: float = 1.0, shape: tuple[int, int, int] = PEAK_SHAPE
                 ) -> float:
    """FLOP/s of the fastest of repeated ``x @ W.T`` products (``shape``: rows, in, out) in ``dtype`` over
    about ``seconds``, with torch's current threads."""
    rows, inner, out = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inner, generator=generator).to(dtype)
    w = torch.randn(out, inner, generator=generator).to(dtype)
    flops = 2 * rows * inner * out
    with torch.no_grad():
        torch.nn.functional.linear(x, w)  # primitives and caches made before timing
        best, deadline = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < deadline or best == float("inf"):
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = min(best, time.perf_counter() - start)
    return flops / best


@dataclass
class Step:
    name: str
    seconds: float
    flops: dict[str, int]  # by dtype
    kinds: dict[str, int] = field(default_factory=dict)  # forward, backward, rebuild

    def fraction(self, peaks: dict[str, float]) -> float | None:
        """The share of the step's wall time its arithmetic would take at the measured peak of each dtype it
        ran in (None when it counted none, or ran in a dtype without a measured peak)."""
        if not self.flops or self.seconds <= 0 or any(d not in peaks for d in self.flops):
            return None
        return sum(f / peaks[d] for d, f in self.flops.items()) / self.seconds


@dataclass
class TimeBudget:
    """The steps of one run, in order, and the peaks they are measured against."""

    steps: list[Step] = field(default_factory=list)
    peaks: dict[str, float] = field(default_factory=dict)  # dtype -> FLOP/s
    threads: int | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[FlopCount]:
        start = time.monotonic()
        with FlopCount() as count:
            try:
                yield count
            finally:
                self.steps.append(Step(name, time.monotonic() - start, count.by_dtype(), count.by_kind()))

    def measure_peaks(self, dtypes: tuple[str, ...] = ("float32",), seconds: float = 1.0) -> None:
        """Each dtype's matmul peak now (float32 always; the other dtypes the steps ran in)."""
        used = {d for s in self.steps for d in s.flops}
        self.threads = torch.get_num_threads()
        for name in sorted(set(dtypes) | used):
            if name in ("float32", "bfloat16", "float16"):
                self.peaks[name] = measure_peak(getattr(torch, name), seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "peak_flops_per_s": self.peaks,
                "steps": [{"step": s.name, "seconds": round(s.seconds, 3), "flops": s.flops, "flops_by_kind": s.kinds,
                           "fraction_of_peak": s.fraction(self.peaks)} for s in self.steps],
                "total_seconds": round(sum(s.seconds for s in self.steps), 3)}

    def lines(self) -> list[str]:
        peaks = ", ".join(f"{d} {p / 1e9:.0f}" for d, p in sorted(self.peaks.items()))
        out = [f"{'step':<12}{'wall':>8}{'GFLOP':>9}{'forward':>9}{'backward':>9}{'rebuild':>9}{'of peak':>9}  dtype",
               *(self._line(s) for s in self.steps),
               f"{'total':<12}{_clock(sum(s.seconds for s in self.steps)):>8}"
               f"{sum(sum(s.flops.values()) for s in self.steps) / 1e9:>9,.0f}",
               f"GFLOP asked of the hardware: linear layers forward and backward, weight rebuilds, padding included "
               f"(not attention, SVDs, elementwise work); of peak: that arithmetic at the peak of a "
               f"{PEAK_SHAPE[0]}x{PEAK_SHAPE[1]} by {PEAK_SHAPE[1]}x{PEAK_SHAPE[2]} matrix product measured in this "
               f"process with {self.threads} thread(s) ({peaks} GFLOP/s), over the step's wall time"]
        return out

    def _line(self, s: Step) -> str:
        fraction = s.fraction(self.peaks)
        share = "-" if fraction is None else f"{fraction:.0%}"
        kinds = "".join(f"{s.kinds.get(k, 0) / 1e9:>9,.0f}" for k in ("forward", "backward", "rebuild"))
        return (f"{s.name:<12}{_clock(s.seconds):>8}{sum(s.flops.values()) / 1e9:>9,.0f}{kinds}{share:>9}  "
                f"{'+'.join(sorted(s.flops)) or '-'}")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}"
