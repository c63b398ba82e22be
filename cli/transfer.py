"""``t2reg transfer``: carry experts from one base model to another."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import queue_job
from t2reg.cli.options import default_of, json_option
from t2reg.cli.output import emit_json
from t2reg.transfer.alignment import LAYER_ALIGNMENTS, RANK_ALIGNMENTS
from t2reg.transfer.core import BASELINES
from t2reg.transfer.spec import TransferSpec


@click.command()
@click.argument("ref", required=False)
@click.option("--from", "source_model", help="Transfer every latest expert of this model (instead of REF).")
@click.option("--to", "target", required=True, help="Target base model (name or alias).")
@click.option("--task", help="With --from: only experts for this task.")
@default_of(TransferSpec, "layer_align", type=click.Choice(LAYER_ALIGNMENTS),
            help="relative: interpolate between the nearest source layers; index: equal depth, layer j to j.")
@default_of(TransferSpec, "rank_align", type=click.Choice(RANK_ALIGNMENTS),
            help="How singular-value indices correspond: by position i/r, one to one, or by cumulative energy "
                 "(needs both models' spectra).")
@default_of(TransferSpec, "baseline", type=click.Choice(BASELINES),
            help="shuffled: permute each vector (the control showing the canonical order carries the skill).")
@default_of(TransferSpec, "seed", help="Seed of the shuffled baseline.")
@click.option("--name", help="Name of the published expert (only with REF).")
@click.option("--dry-run", is_flag=True, help="Compute the plan and report; publish nothing.")
@click.option("--detach", is_flag=True, help="Only queue it as a job; a `t2reg worker` runs it.")
@json_option
@pass_app
def transfer(app: AppContext, detach: bool, as_json: bool, **options) -> None:
    """Map experts to another base model by canonical singular-value order.

    \b
    t2reg transfer gsm8k-llama3-8b:2 --to mistral-7b
    t2reg transfer --from llama3-8b --to mistral-7b --task gsm8k
    t2reg transfer gsm8k-llama3-8b:2 --to mistral-7b --baseline shuffled --seed 7
    """
    from t2reg.transfer.publishing import run_transfer

    if (options["ref"] is None) == (options["source_model"] is None):
        raise click.UsageError("give an expert REF or --from MODEL (one of them)")
    spec = TransferSpec(**options)
    if detach:
        queue_job(app, spec, as_json)
        return
    results = run_transfer(app.registry(), spec).results
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
