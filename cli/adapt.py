"""``t2reg adapt``: few-shot search over a pool of experts, as a job (foreground or detached)."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import queue_job, run_here
from t2reg.cli.output import json_option


@click.command()
@click.option("--model", required=True, help="The model to adapt.")
@click.option("--task", required=True, help="The task to adapt to.")
@click.option("--pool", "pool", multiple=True, required=True, metavar="FILTER",
              help="Experts to mix (repeatable, OR'ed): 'model=llama3-8b', 'task in (gsm8k,mbpp)', or NAME:VERSION. "
                   "Experts on another model are transferred first.")
@click.option("--shots", default=10, show_default=True, help="Examples that drive the search.")
@click.option("--heldout", default=100, show_default=True, help="Test examples the result is reported on.")
@click.option("--per-matrix", is_flag=True, help="One coefficient per expert and matrix instead of per expert.")
@click.option("--normalize", is_flag=True, help="Rescale each candidate's alpha to sum to 1 (per matrix with --per-matrix).")
@click.option("--optimizer", default="cem", show_default=True, help="cem or cmaes.")
@click.option("--population", default=32, show_default=True, help="Candidates per generation.")
@click.option("--elite", default=0.2, show_default=True, help="Elite fraction (CEM).")
@click.option("--iterations", default=50, show_default=True, help="Most generations to run.")
@click.option("--init-std", default=0.5, show_default=True, help="Initial spread of alpha.")
@click.option("--patience", type=int, help="Stop after this many generations without a better best.")
@click.option("--tolerance", default=0.0, show_default=True, help="Smaller gains do not count for --patience.")
@click.option("--seed", default=0, show_default=True)
@click.option("--backend", default="hf", show_default=True, help="hf or vllm.")
@click.option("--population-eval", default="auto", show_default=True,
              type=click.Choice(["auto", "batched", "sequential"]),
              help="Score a generation in shared batches (factored experts) or one candidate at a time; "
                   "auto measures both in the first generation.")
@click.option("--batch-size", default=16, show_default=True, help="Rows per forward pass.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Evaluation data [env T2REG_DATA_DIR].")
@click.option("--name", help="Name of the published expert [default: TASK-MODEL-adapted].")
@click.option("--detach", is_flag=True, help="Only queue the job; a `t2reg worker` runs it.")
@json_option
@pass_app
def adapt(app: AppContext, detach: bool, as_json: bool, **options) -> None:
    """Find the mixture of pool experts that does best on a few shots; publish it.

    The search runs as a job: it survives a crash (`t2reg jobs resume ID`
    continues from the last completed generation) and its progress is in
    `t2reg jobs show ID`. The result is published as an `adapted` expert with
    its held-out score, beside the base model's score on the same examples.

    \b
    t2reg adapt --model mistral-7b --task arc-challenge --shots 10 \\
        --pool 'model=llama3-8b' --pool 'model=mistral-7b,task in (gsm8k,mbpp,arc-easy)'
    """
    from t2reg.adaptation.adapt import AdaptSpec

    spec = AdaptSpec(**{**options, "pool": tuple(options["pool"])})
    if detach:
        queue_job(app, "adapt", spec.to_dict(), as_json)
        return
    run_here(app, "adapt", spec.to_dict(), label=spec.optimizer.upper(), as_json=as_json)


COMMANDS = [adapt]
