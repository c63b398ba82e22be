"""`t2reg serve` under a soak: many requests, valid and hostile, from concurrent clients; the server's RSS.

A tiny random Llama (the serving tests' model) with four experts, served with small limits; then
--requests requests from --clients threads: 60 % greedy or seeded chat and completion requests (half of
the chats streamed), each checked against the text it gets alone, and 40 % hostile ones, each checked for
its own error: seeds past 64 bits, lone surrogates in values and keys, NaN, top_p 0, malformed and deeply
nested JSON, bodies over --max-body, prompts over --max-prompt-tokens, max_tokens over the limit, unknown
models, n=2, streams the client leaves after one chunk, and every 250th request a client that stalls in
its headers or its body (the server must close it). The server's RSS is read from /proc every 0.2 s.

Prints the RSS before the first request, after the warm-up and at each tenth of the run, the peak after the
warm-up against the warm-up figure (the test in `make test` asserts at most 1.25x on 2,000 requests), the
requests per second and every failure.

Usage: python bench/serve_soak.py [--requests 10000] [--clients 16] [--warmup 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import soak  # noqa: E402 - the soak the test runs, one home for it
from tests.helpers.serving import ServerProcess, tiny_home  # noqa: E402

EXPERTS = [("math-weak", "gsm8k", 1, 0.2), ("math-strong", "gsm8k", 2, 0.6), ("coder", "mbpp", 3, 0.4),
           ("reasoner", "arc-easy", 4, 0.5)]
LIMITS = {"max_tokens": 16, "max_prompt_tokens": 64, "max_body": 8192}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = tiny_home(root, EXPERTS)
        proc = ServerProcess(home, "--model", "tiny", "--max-tokens", str(LIMITS["max_tokens"]), "--max-prompt-tokens",
                             str(LIMITS["max_prompt_tokens"]), "--max-kv-tokens", "256", "--max-batch", "8",
                             "--max-queue", "64", "--max-body", str(LIMITS["max_body"]), "--read-timeout", "2",
                             log=root / "server.log")
        try:
            started = soak.rss(proc.proc.pid)
            valid = soak.measure_alone(proc.root, soak.valid_requests(["tiny", "coder:1", "math-strong:1",
                                                                       "reasoner:1"]), {})
            hostile = soak.hostile_requests(proc.root, **LIMITS)
            report = soak.soak(proc.root, proc.proc.pid, valid, hostile, args.requests, args.clients, args.warmup)
        finally:
            code = proc.stop()
    mib = 2**20
    print(f"{report.requests} requests ({report.sent.get('valid', 0)} valid) from {args.clients} clients in "
          f"{report.seconds:.0f} s ({report.requests / report.seconds:.1f} req/s); server exit {code}")
    print(f"  RSS before the first request   {started / mib:7.1f} MiB")
    print(f"  RSS after {args.warmup} (warm-up)      {report.warmup_rss / mib:7.1f} MiB")
    for tenth in range(1, 11):
        mark = args.requests * tenth // 10
        done, rss = min(report.rss, key=lambda sample: abs(sample[0] - mark))
        print(f"  RSS at {done:6d} answered        {rss / mib:7.1f} MiB")
    print(f"  peak after the warm-up         {report.peak_after_warmup / mib:7.1f} MiB "
          f"({report.peak_after_warmup / report.warmup_rss:.3f}x the warm-up figure)")
    print("  sent: " + ", ".join(f"{kind} {n}" for kind, n in sorted(report.sent.items())))
    print(f"  failures: {len(report.failures)}")
    for failure in report.failures[:50]:
        print(f"    {failure}")


if __name__ == "__main__":
    main()
