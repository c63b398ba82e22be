"""How fast is `best`, and how fast is publish?

1. `best --task X --limit 5` through the Python API on a SQLite registry with
   100,000 versions and 1,000,000 evaluations over 20 tasks and 10 models,
   against the obvious alternative run in the same process: load the task's
   evaluations into Python and rank there. Goal: median <= 20 ms, >= 50x faster.
2. Publish throughput for a 96 x 4096-float expert (Llama-3-8B's MLP), against
   the I/O floor a publish cannot avoid (hash + write + fsync of the same bytes).

Usage: python bench/registry_best.py [--versions N] [--evals-per-version K] [--queries Q]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from t2reg.expert_file import Expert, ExpertMeta
from t2reg.registry import Registry
from t2reg.registry.orm import BaseModelRow, EvaluationRow, ExpertRow, ProtocolRow, VersionRow
from t2reg.settings import load_settings

TASKS = [f"task{i:02d}" for i in range(20)]
SPLITS = [None, "test", "validation"]


def populate(registry: Registry, n_versions: int, evals_per_version: int, seed: int = 0) -> None:
    """Bulk-load rows with SQLAlchemy Core; flags computed as the store would keep them."""
    rng = random.Random(seed)
    versions_per_expert = 10
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with registry.db.session(write=True) as s:
        models = [
            s.scalar(insert(BaseModelRow).values(name=f"bench/model-{m}", architecture="LlamaForCausalLM",
                                                 source="builtin", config={}, shapes={}).returning(BaseModelRow.id))
            for m in range(10)
        ]
        n_experts = n_versions // versions_per_expert
        s.execute(insert(ExpertRow), [
            {"id": e + 1, "name": f"expert-{e}", "base_model_id": models[e % 10], "task": TASKS[e % 20],
             "description": ""} for e in range(n_experts)])
        s.execute(insert(VersionRow), [
            {"id": v + 1, "expert_id": v // versions_per_expert + 1, "version": v % versions_per_expert + 1,
             "blob_sha256": f"{v:064x}", "size": 1, "n_params": 1, "parametrization": "scale",
             "renormalize": "nuclear", "source": "native" if v % 3 else "transferred",
             "status": "deleted" if v % 17 == 0 else "live", "meta": {}, "created_at": t0}
            for v in range(n_versions)])
        # three protocols per task, the first the most used: best ranks within it by default
        s.execute(insert(ProtocolRow), [{"id": f"{task}-p{p}", "task": task, "spec": {"task": task},
                                         "uses": 1000 // (p + 1), "created_at": t0} for task in TASKS for p in range(3)])
        rows, latest, latest_split = [], {}, {}
        for v in range(n_versions):
            for k in range(evals_per_version):
                task = TASKS[(v // versions_per_expert) % 20] if k < evals_per_version // 2 else rng.choice(TASKS)
                split = rng.choice(SPLITS)
                protocol = f"{task}-p{rng.choices(range(3), weights=(7, 2, 1))[0]}"
                i = len(rows)
                latest[(v, task, protocol)] = i
                latest_split[(v, task, protocol, split)] = i
                rows.append({"version_id": v + 1, "task": task, "metric": "accuracy", "value": rng.random(),
                             "split": split, "n": 100, "source": "record", "protocol_id": protocol,
                             "created_at": t0 + timedelta(seconds=i), "is_latest": False, "is_latest_in_split": False})
        for i in latest.values():
            rows[i]["is_latest"] = True
        for i in latest_split.values():
            rows[i]["is_latest_in_split"] = True
        for start in range(0, len(rows), 50_000):
            s.execute(insert(EvaluationRow), rows[start:start + 50_000])
    with registry.db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")


def best_in_python(registry: Registry, task: str, limit: int = 5) -> list[str]:
    """The reference: fetch every evaluation of the task under its most used protocol and rank in Python."""
    with registry.db.session() as s:
        protocol = s.scalar(select(ProtocolRow.id).where(ProtocolRow.task == task).order_by(ProtocolRow.uses.desc()))
        rows = s.execute(
            select(EvaluationRow.version_id, EvaluationRow.value, EvaluationRow.id, VersionRow.status,
                   VersionRow.version, ExpertRow.name)
            .join(VersionRow, VersionRow.id == EvaluationRow.version_id)
            .join(ExpertRow, ExpertRow.id == VersionRow.expert_id)
            .where(EvaluationRow.task == task, EvaluationRow.metric == "accuracy",
                   EvaluationRow.protocol_id == protocol)
        ).all()
    newest: dict[int, tuple] = {}
    for row in rows:
        if row.status == "live" and (row.version_id not in newest or row.id > newest[row.version_id].id):
            newest[row.version_id] = row
    ranked = sorted(newest.values(), key=lambda r: (-r.value, -r.id))[:limit]
    return [f"{r.name}:{r.version}" for r in ranked]


def time_calls(fn, args_list) -> list[float]:
    out = []
    for args in args_list:
        start = time.perf_counter()
        fn(*args)
        out.append(time.perf_counter() - start)
    return out


def bench_best(registry: Registry, queries: int) -> None:
    rng = random.Random(1)
    tasks = [(rng.choice(TASKS),) for _ in range(queries)]
    for (task,) in tasks[:5]:  # same answers, or the comparison means nothing
        assert [r.ref for r in registry.best(task, limit=5)] == best_in_python(registry, task), task
    ours = time_calls(lambda t: registry.best(t, limit=5), tasks)
    ref = time_calls(lambda t: best_in_python(registry, t), tasks[: max(5, queries // 10)])
    model_filtered = time_calls(lambda t: registry.best(t, model="bench/model-3", limit=5), tasks)
    split_filtered = time_calls(lambda t: registry.best(t, split="test", limit=5), tasks)
    med, ref_med = statistics.median(ours), statistics.median(ref)
    print(f"best --limit 5          median {med * 1e3:7.2f} ms  (p95 {sorted(ours)[int(0.95 * len(ours))] * 1e3:.2f} ms)")
    print(f"  with --model          median {statistics.median(model_filtered) * 1e3:7.2f} ms")
    print(f"  with --split test     median {statistics.median(split_filtered) * 1e3:7.2f} ms")
    print(f"rank in Python (ref)    median {ref_med * 1e3:7.2f} ms")
    print(f"RATIO best speed-up vs Python ranking: {ref_med / med:.1f}x  (goal >= 50x; median goal <= 20 ms: "
          f"{'met' if med <= 0.020 else 'MISSED'})")


def bench_publish(registry: Registry, n: int) -> None:
    shapes = registry.model_shapes("llama3-8b")
    names = [k for k in shapes if ".mlp." in k]
    rng = np.random.default_rng(0)
    experts = [Expert({k: rng.uniform(0.5, 1.5, 4096).astype(np.float32) for k in names},
                      ExpertMeta(base_model="meta-llama/Meta-Llama-3-8B-Instruct", task="gsm8k")) for _ in range(n)]
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        from t2reg.expert_file import write_expert

        for i, e in enumerate(experts):
            files.append(write_expert(e, Path(tmp) / f"{i}.safetensors"))
        start = time.perf_counter()
        for path in files:
            registry.publish(path, metrics=["gsm8k:accuracy=0.5"])
        ours = (time.perf_counter() - start) / n
        start = time.perf_counter()
        for i, path in enumerate(files):
            data = path.read_bytes()
            hashlib.sha256(data).hexdigest()
            with open(Path(tmp) / f"floor-{i}", "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        floor = (time.perf_counter() - start) / n
    print(f"publish 96x4096 expert  {1 / ours:7.1f} experts/s  ({ours * 1e3:.1f} ms each, 1.5 MiB)")
    print(f"I/O floor (ref)         {1 / floor:7.1f} files/s    ({floor * 1e3:.1f} ms each)")
    print(f"RATIO publish time / I/O floor: {ours / floor:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--evals-per-version", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--publishes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        registry = Registry(load_settings(home=home), create=True)
        start = time.perf_counter()
        populate(registry, args.versions, args.evals_per_version)
        print(f"populated {args.versions:,} versions, {args.versions * args.evals_per_version:,} evaluations "
              f"in {time.perf_counter() - start:.0f} s")
        bench_best(registry, args.queries)
        bench_publish(registry, args.publishes)
        registry.close()


if __name__ == "__main__":
    main()
