"""``t2reg tasks`` and ``t2reg eval``."""

from __future__ import annotations


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
    OutputFile,
    replica_options,
)
from t2reg.cli.output import emit_json, emit_table
from t2reg.protocols import describe_spec


@click.group()
def tasks() -> None:
    """Evaluation tasks."""


@tasks.command("list")
@json_option
def tasks_list(as_json: bool) -> None:
    """List registered tasks, with the scoring modes each supports (its default first)."""
    from t2reg.adaptation.tasks import all_tasks

    rows = [{"name": t.name, "category": t.category, "metric": t.metric,
             "modes": [str(t.default_mode)] + [str(m) for m in t.modes if m != t.default_mode],
             "prompt_version": t.prompt_version, "description": t.description} for t in all_tasks()]
    emit_json(rows) if as_json else emit_table(rows, ("name", "category", "metric", "modes", "description"))


def question_options(command):
    """What defines the questions and how they are scored: shared by eval and compare."""
    for option in reversed([
        click.option("--task", help="Task name (see `t2reg tasks list`)."),
        default_of(EvalSpec, "split", type=click.Choice(["train", "validation", "test"])),
        click.option("--limit", type=int, help="Score a seeded random sample of N questions [default: the whole "
                                               "split]; never the first N rows."),
        default_of(EvalSpec, "seed", help="Seed of the --limit sample (the same seed draws the same questions)."),
        default_of(EvalSpec, "mode", type=click.Choice(MODES),
                   help="cloze: each option's text scored as the answer (lm-evaluation-harness style); letter: the "
                        "log-likelihood of the option letter; generate: generation and a checker; auto: the task's "
                        "default (cloze for ARC)."),
        default_of(EvalSpec, "permute", help="Letter mode: score each question under K cyclic rotations of its "
                                             "options, so a preference for one letter cancels."),
        click.option("--max-new-tokens", type=int, help="Generation budget [default: the task's]."),
        backend_option(EvalSpec.default("backend")),
        data_dir_option,
        default_of(EvalSpec, "batch_size"),
        device_option,
        dtype_option,
    ]):
        command = option(command)
    return command


@click.command("eval")
@click.argument("ref", required=False)
@click.option("--base", help="Evaluate this base model with no expert (instead of REF).")
@question_options
@click.option("--save-outputs", type=OutputFile(),
              help="Write the per-question results as JSONL here (id, prediction, answer, correct, logprob, ...).")
@click.option("--detach", is_flag=True, help="Only queue it as a job; a `t2reg worker` runs it and records the score.")
@click.option("--strategy", metavar="prompt|classifier|fixed:REF",
              help="With --base: two-pass inference, each example answered by the expert a first pass picks.")
@click.option("--pool", multiple=True, metavar="FILTER", help="With --strategy: experts to route to (repeatable).")
@replica_options(EvalSpec)
@json_option
@pass_app
def eval_(app: AppContext, ref, base, task, split, limit, seed, mode, permute, max_new_tokens, backend, data_dir,
          batch_size, device, dtype, save_outputs, detach, strategy, pool, replicas, ray_address, threads,
          as_json) -> None:
    """Score an expert (or a base model) on a task; the score is recorded in the registry under its
    protocol (task, split, mode, prompt, sample), with every question's result.

    Multiple-choice reports show the trivial baseline beside the score (always giving the most common
    right answer) and how the predictions spread over the options; a warning follows when one option
    takes more than half of them.

    \b
    t2reg eval --base smollm2-135m --task arc-easy                      # cloze, the whole test split
    t2reg eval arc-easy-smollm2-135m:1 --task arc-easy --limit 300 --seed 0
    t2reg eval gsm8k-smollm2-135m:1 --task gsm8k --limit 200
    t2reg eval --base smollm2-135m --task arc-easy --replicas 4     # questions sharded over 4 replicas
    """
    from tqdm import tqdm

    from t2reg.adaptation.evaluation.runs import run_evaluation

    if (ref is None) == (base is None):
        raise click.UsageError("give an expert REF or --base MODEL (one of them)")
    if task is None:
        raise click.UsageError("Missing option '--task'.")
    if pool and not strategy:
        raise click.UsageError("--pool chooses the experts of a two-pass --strategy; add --strategy or drop --pool")
    spec = EvalSpec(task=task, ref=ref, base=base, split=split, limit=limit, seed=seed, backend=backend, mode=mode,
                    data_dir=data_dir, batch_size=batch_size, device=device, dtype=dtype,
                    max_new_tokens=max_new_tokens, permute=permute, replicas=replicas, ray_address=ray_address,
                    threads=threads)
    if strategy:
        _refuse_with_strategy(detach=detach, save_outputs=save_outputs, mode=mode != "auto",
                              max_new_tokens=max_new_tokens, permute=permute != 1, replicas=replicas,
                              ray=ray_address, threads=threads)
        _dispatched(app, spec, strategy, list(pool), as_json)
        return
    if detach:
        if save_outputs:
            raise click.UsageError("--save-outputs needs the foreground; drop --detach")
        queue_job(app, spec, as_json)
        return
    run = run_evaluation(app.registry(), spec, progress=lambda it: tqdm(it, desc=f"{task} ({split})", unit="batch"))
    result = run.result
    if save_outputs:
        result.save_outputs(save_outputs)
    warning = result.dominant_prediction()
    if warning:
        click.echo(f"warning: option {warning[0]} is {warning[1]:.0%} of the predictions; the score may measure a "
                   "preference for one option, not knowledge", err=True)
    if as_json:
        emit_json(run.to_dict())
        return
    for line in result_lines(run.subject, result):
        click.echo(line)


def result_lines(subject: str, result) -> list[str]:
    """An evaluation for people: the score with its interval, the protocol, and the trivial baselines."""
    low, high = result.interval
    lines = [f"{subject} {result.task}/{result.split}: {result.metric} {result.score:.4f} "
             f"(95% CI {low:.3f}-{high:.3f}, n={result.n}, {result.mode}, {result.seconds:.0f}s)"]
    if result.score_norm is not None:
        lines.append(f"  accuracy_norm {result.score_norm:.4f} (log-likelihood per byte of the option)")
    if result.mean_correct_logprob is not None:
        lines.append(f"  mean log p(right answer) {result.mean_correct_logprob:.4f}")
    baseline = result.constant_baseline()
    if baseline is not None:
        lines.append(f"  constant baseline {baseline.accuracy:.4f} (always {baseline.answer}); "
                     f"predictions: {spread(result.prediction_histogram())}")
    if result.protocol is not None:
        lines.append(f"  protocol {result.protocol.id}: {result.protocol.describe()}")
    return lines


@click.command()
@click.argument("x")
@click.argument("y")
@question_options
@click.option("--protocol", help="Compare under this recorded protocol (see `t2reg protocols`) instead of the one "
                                 "the options above define.")
@json_option
@pass_app
def compare(app: AppContext, x, y, task, split, limit, seed, mode, permute, max_new_tokens, backend, data_dir,
            batch_size, device, dtype, protocol, as_json) -> None:
    """Compare X and Y on the same questions: paired, not two separate intervals.

    X and Y are expert versions (NAME:VERSION) or base models alone (base:MODEL). Each is evaluated
    first if it has no recorded score with per-question results under the protocol. Reports n, both
    accuracies, the difference Y - X with a paired bootstrap 95% interval, McNemar's exact p-value,
    and the mean difference in the log-probability of the right answer with its interval; for multiple
    choice, the constant baseline on the same questions and how each side's predictions spread.

    \b
    t2reg compare base:smollm2-135m arc-easy-smollm2-135m:1 --task arc-easy
    t2reg compare base:gemma3-270m arc-easy-smollm2-135m--to-gemma3-270m:1 --task arc-easy --limit 500
    """
    from tqdm import tqdm

    from t2reg.adaptation.evaluation.compare import compare as run_compare

    if (task is None) == (protocol is None):
        raise click.UsageError("give --task (and the options that define the questions) or --protocol ID")
    spec = EvalSpec(task=task or "", split=split, limit=limit, seed=seed, backend=backend, mode=mode, data_dir=data_dir,
                    batch_size=batch_size, device=device, dtype=dtype, max_new_tokens=max_new_tokens, permute=permute)
    result = run_compare(app.registry(), x, y, spec, protocol,
                         progress=lambda it: tqdm(it, desc="evaluating", unit="batch"))
    if as_json:
        emit_json(result.to_dict())
        return
    for line in comparison_lines(result):
        click.echo(line)


def comparison_lines(c) -> list[str]:
    low, high = c.delta_ci95
    lines = [f"protocol {c.protocol.id}: {c.protocol.describe()}",
             f"n {c.n} questions, paired",
             f"X {c.x}: accuracy {c.accuracy_x:.4f}",
             f"Y {c.y}: accuracy {c.accuracy_y:.4f}",
             f"Y - X {c.delta:+.4f} (paired bootstrap 95% CI {low:+.4f} to {high:+.4f}); McNemar exact p = "
             f"{c.mcnemar_p:.4g} ({c.only_x} right only for X, {c.only_y} only for Y)"]
    if c.logprob_delta is not None:
        low, high = c.logprob_delta_ci95
        lines.append(f"log p(right answer), Y - X: {c.logprob_delta:+.4f} (95% CI {low:+.4f} to {high:+.4f})")
    if c.choice_logprob_delta is not None:
        low, high = c.choice_logprob_delta_ci95
        lines.append(f"log p(right answer | its options), Y - X: {c.choice_logprob_delta:+.4f} "
                     f"(95% CI {low:+.4f} to {high:+.4f})")
    if c.constant is not None:
        lines.append(f"constant baseline {c.constant.accuracy:.4f} (always {c.constant.answer}) on these questions")
        for side, histogram in (("X", c.predictions_x), ("Y", c.predictions_y)):
            lines.append(f"predictions {side}: {spread(histogram)}")
    return lines


def spread(histogram: dict[str, int]) -> str:
    """How often each option was predicted, for people: ``A 12, B 30, C 9``."""
    return ", ".join(f"{option} {count}" for option, count in histogram.items())


@click.command("protocols")
@click.option("--task", help="Only this task's protocols.")
@json_option
@pass_app
def protocols_list(app: AppContext, task, as_json) -> None:
    """Protocols scores were recorded under, most used first: `best` ranks within one of them."""
    found = app.registry().protocols(task)
    if as_json:
        emit_json([p.to_dict() for p in found])
        return
    emit_table(({"id": p.id, "task": p.task, "uses": p.uses, "measured": describe_spec(p.spec)} for p in found),
               ("id", "task", "uses", "measured"), empty="no protocols yet")


def _refuse_with_strategy(**given: object) -> None:
    # Two-pass evaluation runs in the foreground and each task scores its own way in the second pass.
    used = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    if used:
        raise click.UsageError(f"{', '.join(used)} cannot be used with --strategy")


def _dispatched(app, spec: EvalSpec, strategy: str, pool: list[str], as_json: bool) -> None:
    from t2reg.adaptation.dispatch import run_dispatched_evaluation

    if spec.base is None:
        raise click.UsageError("--strategy evaluates a base model: use --base MODEL, not an expert REF")
    result, dispatched = run_dispatched_evaluation(app.registry(), spec, strategy, pool)
    base, task, split = spec.base, spec.task, spec.split
    counts: dict[str, int] = {}
    for expert in dispatched.experts:
        counts[expert or "base"] = counts.get(expert or "base", 0) + 1
    if as_json:
        emit_json({"subject": base, "strategy": strategy, **result.to_dict(), "routes": counts,
                   "first_pass_seconds": dispatched.first_pass_seconds, "second_pass_seconds": dispatched.second_pass_seconds})
        return
    low, high = result.interval
    click.echo(f"{base} {task}/{split} ({strategy} dispatch): {result.metric} {result.score:.4f} "
               f"(95% CI {low:.3f}-{high:.3f}, n={result.n})")
    click.echo("routes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    click.echo(f"first pass {dispatched.first_pass_seconds:.2f}s, second pass {dispatched.second_pass_seconds:.2f}s")


COMMANDS = [tasks, eval_, compare, protocols_list]
