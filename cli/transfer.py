"""``t2reg transfer``: carry experts from one base model to another."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import queue_job
from t2reg.cli.output import emit_json, json_option
from t2reg.errors import InvalidInputError


@click.command()
@click.argument("ref", required=False)
@click.option("--from", "source_model", help="Transfer every latest expert of this model (instead of REF).")
@click.option("--to", "target", required=True, help="Target base model (name or alias).")
@click.option("--task", help="With --from: only experts for this task.")
@click.option("--layer-align", type=click.Choice(["relative", "index"]), default="relative", show_default=True,
              help="relative: interpolate between the nearest source layers; index: equal depth, layer j to j.")
@click.option("--rank-align", type=click.Choice(["quantile", "index", "energy"]), default="quantile", show_default=True,
              help="How singular-value indices correspond: by position i/r, one to one, or by cumulative energy "
                   "(needs both models' spectra).")
@click.option("--baseline", type=click.Choice(["none", "shuffled"]), default="none", show_default=True,
              help="shuffled: permute each vector (the control showing the canonical order carries the skill).")
@click.option("--seed", default=0, show_default=True, help="Seed of the shuffled baseline.")
@click.option("--name", help="Name of the published expert (only with REF).")
@click.option("--dry-run", is_flag=True, help="Compute the plan and report; publish nothing.")
@click.option("--detach", is_flag=True, help="Only queue it as a job; a `t2reg worker` runs it.")
@json_option
@pass_app
def transfer(app: AppContext, ref, source_model, target, task, layer_align, rank_align, baseline, seed, name,
             dry_run, detach, as_json) -> None:
    """Map experts to another base model by canonical singular-value order.

    \b
    t2reg transfer gsm8k-llama3-8b:2 --to mistral-7b
    t2reg transfer --from llama3-8b --to mistral-7b --task gsm8k
    t2reg transfer gsm8k-llama3-8b:2 --to mistral-7b --baseline shuffled --seed 7
    """
    from t2reg.transfer.publishing import transfer_model, transfer_version

    if (ref is None) == (source_model is None):
        raise click.UsageError("give an expert REF or --from MODEL (one of them)")
    if name and source_model:
        raise InvalidInputError("--name applies to a single REF, not to --from")
    options = dict(layer_align=layer_align, rank_align=rank_align, baseline=baseline, seed=seed, dry_run=dry_run)
    registry = app.registry()
    if detach:
        spec = {"ref": ref, "source_model": source_model, "target": target, **options,
                **({"name": name} if ref else {"task": task})}
        queue_job(app, "transfer", spec, as_json)
        return
    if ref:
        results = [transfer_version(registry, ref, target, name=name, **options)]
    else:
        results = transfer_model(registry, source_model, target, task=task, **options)
    if as_json:
        emit_json([r.to_dict() for r in results])
        return
    for result in results:
        for line in result.report.lines():
            click.echo(line)
        if result.version is not None:
            verb = "reused" if result.reused else "published"
            click.echo(f"{verb} {result.version.ref} (from {result.source_ref})")
        else:
            click.echo(f"dry run: nothing published (from {result.source_ref})")
        click.echo("")


COMMANDS = [transfer]
