"""``t2reg tasks`` and ``t2reg eval``."""

from __future__ import annotations

from pathlib import Path

import click

from t2reg.adaptation.evaluation.spec import MODES, EvalSpec
from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import queue_job
from t2reg.cli.options import (
    backend_option,
    data_dir_option,
    default_of,
    device_option,
    dtype_option,
    json_option,
    replica_options,
)
from t2reg.cli.output import emit_json, emit_table


@click.group()
def tasks() -> None:
    """Evaluation tasks."""


@tasks.command("list")
@json_option
def tasks_list(as_json: bool) -> None:
    """List registered tasks."""
    from t2reg.adaptation.tasks import all_tasks

    rows = [{"name": t.name, "category": t.category, "metric": t.metric,
             "scoring": "choice or generate" if t.multiple_choice else "generate", "description": t.description}
            for t in all_tasks()]
    emit_json(rows) if as_json else emit_table(rows, ("name", "category", "metric", "scoring", "description"))


@click.command("eval")
@click.argument("ref", required=False)
@click.option("--base", help="Evaluate this base model with no expert (instead of REF).")
@click.option("--task", required=True, help="Task name (see `t2reg tasks list`).")
@default_of(EvalSpec, "split", type=click.Choice(["train", "validation", "test"]))
@click.option("--limit", type=int, help="Only the first N examples of the split.")
@backend_option(EvalSpec.default("backend"))
@default_of(EvalSpec, "mode", type=click.Choice(MODES),
            help="choice: option log-likelihood (multiple-choice tasks, no generation); auto picks it when it can.")
@data_dir_option
@default_of(EvalSpec, "batch_size")
@device_option
@dtype_option
@click.option("--max-new-tokens", type=int, help="Generation budget [default: the task's].")
@click.option("--save-outputs", type=click.Path(dir_okay=False, path_type=Path), help="Write per-example JSONL here.")
@click.option("--detach", is_flag=True, help="Only queue it as a job; a `t2reg worker` runs it and records the score.")
@click.option("--strategy", metavar="prompt|classifier|fixed:REF",
              help="With --base: two-pass inference, each example answered by the expert a first pass picks.")
@click.option("--pool", multiple=True, metavar="FILTER", help="With --strategy: experts to route to (repeatable).")
@replica_options(EvalSpec)
@json_option
@pass_app
def eval_(app: AppContext, ref, base, task, split, limit, backend, mode, data_dir, batch_size, device, dtype,
          max_new_tokens, save_outputs, detach, strategy, pool, replicas, ray_address, threads, as_json) -> None:
    """Score an expert (or a base model) on a task; the score is recorded in the registry.

    \b
    t2reg eval gsm8k-smollm2-135m:1 --task gsm8k --limit 200
    t2reg eval --base smollm2-135m --task arc-easy --split test
    t2reg eval --base smollm2-135m --task arc-easy --replicas 4     # questions sharded over 4 replicas
    """
    from tqdm import tqdm

    from t2reg.adaptation.evaluation.runs import run_evaluation

    if (ref is None) == (base is None):
        raise click.UsageError("give an expert REF or --base MODEL (one of them)")
    if strategy:
        _refuse_with_strategy(detach=detach, save_outputs=save_outputs, mode=mode != "auto",
                              max_new_tokens=max_new_tokens, replicas=replicas, ray=ray_address, threads=threads)
        _two_pass(app, task, base, strategy, list(pool), split, limit, backend, data_dir, batch_size, device, dtype,
                  as_json)
        return
    if pool:
        raise click.UsageError("--pool chooses the experts of a two-pass --strategy; add --strategy or drop --pool")
    spec = EvalSpec(task=task, ref=ref, base=base, split=split, limit=limit, backend=backend, mode=mode,
                    data_dir=data_dir, batch_size=batch_size, device=device, dtype=dtype, max_new_tokens=max_new_tokens,
                    replicas=replicas, ray_address=ray_address, threads=threads)
    if detach:
        if save_outputs:
            raise click.UsageError("--save-outputs needs the foreground; drop --detach")
        queue_job(app, spec, as_json)
        return
    run = run_evaluation(app.registry(), spec, progress=lambda it: tqdm(it, desc=f"{task} ({split})", unit="batch"))
    result = run.result
    if save_outputs:
        result.save_outputs(save_outputs)
    if as_json:
        emit_json(run.to_dict())
        return
    low, high = result.interval
    click.echo(f"{run.subject} {task}/{split}: {result.metric} {result.score:.4f} "
               f"(95% CI {low:.3f}-{high:.3f}, n={result.n}, {result.mode}, {result.seconds:.0f}s)")


def _refuse_with_strategy(**given: object) -> None:
    # Two-pass evaluation runs in the foreground and each task scores its own way in the second pass.
    used = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    if used:
        raise click.UsageError(f"{', '.join(used)} cannot be used with --strategy")


def _two_pass(app, task, base, strategy, pool, split, limit, backend, data_dir, batch_size, device, dtype,
              as_json) -> None:
    from t2reg.adaptation.routing import run_two_pass_evaluation

    if base is None:
        raise click.UsageError("--strategy evaluates a base model: use --base MODEL, not an expert REF")
    result, routed = run_two_pass_evaluation(app.registry(), task, base, strategy, pool, split=split, limit=limit,
                                             backend=backend, data_dir=data_dir, batch_size=batch_size,
                                             device=device, dtype=dtype)
    counts: dict[str, int] = {}
    for expert in routed.experts:
        counts[expert or "base"] = counts.get(expert or "base", 0) + 1
    if as_json:
        emit_json({"subject": base, "strategy": strategy, **result.to_dict(), "routes": counts,
                   "first_pass_seconds": routed.first_pass_seconds, "second_pass_seconds": routed.second_pass_seconds})
        return
    low, high = result.interval
    click.echo(f"{base} {task}/{split} ({strategy} dispatch): {result.metric} {result.score:.4f} "
               f"(95% CI {low:.3f}-{high:.3f}, n={result.n})")
    click.echo("routes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    click.echo(f"first pass {routed.first_pass_seconds:.2f}s, second pass {routed.second_pass_seconds:.2f}s")


COMMANDS = [tasks, eval_]
