"""Evaluations over replicas: the questions cut into shards, handed out dynamically, merged in order.

A shard is a whole number of the calls :func:`~t2reg.adaptation.evaluation.scoring.evaluate` makes to
the backend, which sorts each call's questions into batches by length, so every question is scored in the
same batch, beside the same neighbours (hence the same padding), as in one process: the per-question
outputs, and so the result, are the ones an in-process run gives.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

from t2reg.adaptation.distributed.pool import ReplicaPool, chunked
from t2reg.adaptation.distributed.replica import Evaluation, ReplicaSetup
from t2reg.adaptation.distributed.settings import replica_settings
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.evaluation.results import EvalResult
from t2reg.adaptation.evaluation.scoring import Progress, choice_call, generation_call, resolve_mode
from t2reg.adaptation.models import weights_dir
from t2reg.expert_file import Expert

if TYPE_CHECKING:
    from t2reg.adaptation.evaluation.spec import EvalSpec
    from t2reg.registry import Registry

def shard_size(batch_size: int) -> int:
    """Questions per shard: the smallest count that is whole calls to the backend in every scoring mode
    (evaluate() hands it generation_call prompts or choice_call questions at a time, and the backend sorts
    each call by length: a shard of whole calls gives every question the neighbours it has in one process)."""
    return math.lcm(generation_call(batch_size), choice_call(batch_size))


def evaluate_sharded(pool: ReplicaPool, evaluation: Evaluation, progress: Progress | None = None) -> EvalResult:
    """``evaluation`` over the pool's replicas, as one result (per-question outputs in question order)."""
    start = time.monotonic()
    shared = pool.share(evaluation)
    n = len(evaluation.examples)
    shards = chunked(n, shard_size(pool.setup.batch_size)) or [range(0, 0)]  # no questions: one empty shard
    calls = [lambda actor, s=s: actor.evaluate.remote(shared, s.start, s.stop) for s in shards]
    parts: list[Any] = [None] * len(shards)
    done = pool.completions(calls, units=[len(s) for s in shards])
    shown = progress(done) if progress else done
    for index, part in shown:
        parts[index] = part
        if hasattr(shown, "set_postfix_str"):  # a tqdm bar: per-replica questions per second
            shown.set_postfix_str(pool.describe())
    return merge(parts, time.monotonic() - start)


def merge(parts: Sequence[EvalResult], seconds: float) -> EvalResult:
    """One result from consecutive shards' results."""
    first = parts[0]
    outputs = [row for part in parts for row in part.outputs]
    return EvalResult.from_outputs(first.task, first.split, first.metric, first.mode, outputs, seconds)


def evaluate_on_replicas(registry: Registry, spec: EvalSpec, model: str, questions: Questions,
                         expert: Expert | None = None, progress: Progress | None = None
                         ) -> tuple[EvalResult, list[dict[str, Any]]]:
    """An ``eval`` job's scoring over ``spec.replicas`` replicas: its result (under the protocol that names
    its questions) and each replica's throughput."""
    mode = resolve_mode(questions.task, spec.mode)  # a mode the task cannot take fails here, before any replica
    settings = replica_settings(spec)
    setup = ReplicaSetup(str(weights_dir(registry, model)), str(registry.spectra_dir(model)) if expert else None,
                         backend=spec.backend, dtype=spec.dtype, batch_size=spec.batch_size)
    with ReplicaPool(setup, settings, device=spec.device) as pool:
        evaluation = Evaluation(questions.task, list(questions.examples), spec.split, str(mode), permute=spec.permute,
                                expert=expert)
        result = evaluate_sharded(pool, evaluation, progress)
        return replace(result, protocol=questions.protocol(mode, spec.permute, spec.dtype)), pool.report()
