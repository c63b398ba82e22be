"""`t2reg serve` on SmolLM2-135M: many experts in shared batches against one request at a time.

64 chat requests (GSM8K, ARC-Easy and MBPP test questions) spread round-robin
over 4 experts and the base model, greedy, 64 new tokens each:

  served     all 64 sent at once to a `t2reg serve` subprocess (hf backend,
             continuous batching, each row with its own expert in factored form)
             through the openai client, one thread per request;
  reference  the same requests one at a time in this process, each with its
             expert written into the weights (ExpertPatch) and restored after:
             a weight swap per request, as `t2reg run` does.

Prints requests/s and tokens/s of both, the RATIO (goal >= 3x on CPU), p50/p95
latency (for the reference: every request arrives at the start and waits its
turn), and how many served outputs equal their one-at-a-time answer.

Uses the registry in ./.t2reg-bench (shared with bench/apply.py); the four
experts are z = 1 + 0.1 noise over all 90 MLP matrices, published once.

Usage: python bench/serve.py [--requests 64] [--tokens 64] [--experts 4] [--max-batch 32]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"t2reg: serving .* on (http://\S+/v1)")


def questions(n: int) -> list[str]:
    """Questions as a chat user would send them: GSM8K, ARC-Easy (with its options) and MBPP, interleaved."""
    from t2reg.adaptation.tasks import LETTERS, data_dir, get_task, sample

    root = data_dir(os.environ.get("T2REG_DATA_DIR", ROOT.parent / "shared" / "data"))

    def text(ex) -> str:
        options = " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(ex.choices))
        return f"{ex.question} {options}".strip()

    per_task = [[text(ex) for ex in sample(get_task(name).examples("test", root), n, seed=0)]
                for name in ("gsm8k", "arc-easy", "mbpp")]
    return [q for group in zip(*per_task) for q in group][:n]


def publish_experts(registry, count: int) -> list[str]:
    refs = []
    for i in range(count):
        name = f"bench-serve-{i}"
        found = registry.list(where=f"name={name}")
        if found:
            refs.append(found[0].ref)
            continue
        path = ROOT / ".t2reg-bench" / f"{name}.safetensors"
        registry.new_expert_file("smollm2-135m", path, task="gsm8k", noise=0.1, seed=100 + i)
        refs.append(registry.publish(path, name=name).ref)
    return refs


def start_server(pool: list[str], max_batch: int, tokens: int, threads: int | None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "t2reg.cli", "--home", str(ROOT / ".t2reg-bench"), "serve", "--model",
               "smollm2-135m", "--port", "0", "--max-batch", str(max_batch), "--max-tokens", str(tokens),
               "--max-queue", "1024", *[a for ref in pool for a in ("--pool", ref)]]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if selector.select(timeout=1):
            found = READY.search(proc.stdout.readline())
            if found:
                return proc, found.group(1)
    proc.kill()
    raise SystemExit("the server did not start")


def served(url: str, work: list[tuple[str, str]], tokens: int) -> tuple[float, list[float], list[str], int]:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=3600)

    def ask(item):
        model, question = item
        start = time.perf_counter()
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                               max_tokens=tokens, temperature=0)
        return time.perf_counter() - start, reply.choices[0].message.content, reply.usage.completion_tokens

    ask(work[0])  # warm-up: first-call costs on both sides of the socket
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        results = list(pool.map(ask, work))
    wall = time.perf_counter() - start
    return wall, [r[0] for r in results], [r[1] for r in results], sum(r[2] for r in results)


def reference(registry, work: list[tuple[str, str]], tokens: int) -> tuple[float, list[float], list[str], int]:
    from t2reg.adaptation.backends import GenerationRequest, Sampling, open_for
    from t2reg.adaptation.models import load_spectra

    spectra = load_spectra("smollm2-135m", registry)
    experts = {m: registry.read_expert(m) for m, _ in work if m != "smollm2-135m"}
    latencies, texts, generated = [], [], 0
    with open_for(registry, "smollm2-135m") as scheduler:
        scheduler.generate([GenerationRequest(scheduler.render(work[0][1]), Sampling(tokens))])  # warm-up
        start = time.perf_counter()
        for model, question in work:
            request = GenerationRequest(scheduler.render(question), Sampling(tokens))
            if model in experts:
                with scheduler.patched(spectra, experts[model]):
                    text = scheduler.generate([request])[0]
            else:
                text = scheduler.generate([request])[0]
            texts.append(text)
            generated += len(scheduler.tokenizer(text, add_special_tokens=False).input_ids)
            latencies.append(time.perf_counter() - start)  # all arrived at the start, served in turn
    return time.perf_counter() - start, latencies, texts, generated


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads on both sides (OMP_NUM_THREADS for the server)")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from apply import setup  # the same cached SmolLM2 registry as bench/apply.py

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    registry, _ = setup()
    refs = publish_experts(registry, args.experts)
    models = ["smollm2-135m", *refs]
    work = [(models[i % len(models)], q) for i, q in enumerate(questions(args.requests))]
    from t2reg.adaptation.models import tokenizer_for

    tokenizer = tokenizer_for(registry, "smollm2-135m")
    lengths = [len(tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                           add_generation_prompt=True),
                             add_special_tokens=False).input_ids) for _, q in work]
    print(f"SmolLM2-135M, {torch.get_num_threads()} threads, {len(work)} requests over {args.experts} experts and "
          f"the base model, greedy, {args.tokens} new tokens, prompts {min(lengths)}-{max(lengths)} tokens "
          f"(mean {statistics.mean(lengths):.0f}), server --max-batch {args.max_batch}", flush=True)

    proc, url = start_server(refs, args.max_batch, args.tokens, args.threads)
    try:
        s_wall, s_lat, s_texts, s_tokens = served(url, work, args.tokens)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    print(f"  served      {len(work) / s_wall:6.3f} req/s  {s_tokens / s_wall:7.2f} tok/s  wall {s_wall:6.1f} s  "
          f"p50 {percentile(s_lat, 50):6.1f} s  p95 {percentile(s_lat, 95):6.1f} s  (server exit {code})", flush=True)
    r_wall, r_lat, r_texts, r_tokens = reference(registry, work, args.tokens)
    print(f"  reference   {len(work) / r_wall:6.3f} req/s  {r_tokens / r_wall:7.2f} tok/s  wall {r_wall:6.1f} s  "
          f"p50 {percentile(r_lat, 50):6.1f} s  p95 {percentile(r_lat, 95):6.1f} s")
    same = sum(a == b for a, b in zip(s_texts, r_texts))
    print(f"  outputs equal to the one-at-a-time answer: {same}/{len(work)}")
    for (model, question), a, b in zip(work, s_texts, r_texts):
        if a != b:
            print(f"    differs: {model}: {question[:50]!r}\n      served    {a[:120]!r}\n      reference {b[:120]!r}")
    print(f"RATIO served / one at a time: {r_wall / s_wall:.2f}x requests/s, "
          f"{(s_tokens / s_wall) / (r_tokens / r_wall):.2f}x tokens/s (goal >= 3x)")


if __name__ == "__main__":
    main()
