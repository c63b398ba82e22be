"""``t2reg demo``: the main job end to end on SmolLM2-135M and Gemma-3-270M (see adaptation/demo.py)."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import data_dir_option, json_option
from t2reg.cli.output import emit_json


@click.command()
@click.option("--quick", is_flag=True, help="Small budgets: a few minutes on 2 CPU cores from an empty home, too few "
                                            "questions to conclude anything.")
@click.option("--model", "source", default="smollm2-135m", show_default=True,
              help="The model experts are trained on (the paper's: llama3-8b, registered with weights).")
@click.option("--target", default="gemma3-270m", show_default=True,
              help="The model experts are transferred to and adapted (the paper's: mistral-7b).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None,
              help="Every model's weights and activations [default: float32, see bench/README.md]; the scores' "
                   "protocol, so a bfloat16 run trains, searches and scores anew.")
@data_dir_option
@json_option
@pass_app
def demo(app: AppContext, quick: bool, source: str, target: str, dtype: str | None, data_dir: str | None,
         as_json: bool) -> None:
    """Train experts on SmolLM2, transfer them to Gemma-3-270M, adapt Gemma to a new task, compare.

    Prints one table (base, ordered transfer, shuffled transfer, adapted) with n
    and 95% intervals on held-out questions, then each step's wall time, the
    arithmetic it asked for and its share of this machine's measured peak;
    writes plots, the table and the timings to <home>/report/. Rerunning
    reuses models, spectra, experts, transfers, jobs and evaluations.
    """
    import dataclasses

    from t2reg.adaptation.reporting.demo import FULL, QUICK, format_table, run_demo

    registry = app.registry(create=True)  # the demo builds its own registry from an empty home
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    plan = dataclasses.replace(QUICK if quick else FULL, source=source, target=target)
    plan = dataclasses.replace(plan, dtype=dtype) if dtype else plan
    result = run_demo(registry, plan, data_dir, say)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo("")
    for line in format_table(result.rows, plan.conclusive):
        click.echo(line)
    click.echo("")
    for line in result.budget.lines():
        click.echo(line)
    click.echo(f"\nreport: {', '.join(str(f) for f in result.files)}")


COMMANDS = [demo]
