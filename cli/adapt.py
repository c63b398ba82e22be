"""``t2reg adapt``: few-shot search over a pool of experts, as a job (foreground or detached)."""

from __future__ import annotations

import click

from t2reg.adaptation.evaluation.spec import DTYPES
from t2reg.adaptation.search.spec import MIX_SPACES, POPULATION_EVAL_MODES, AdaptSpec
from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import run_or_queue
from t2reg.cli.options import (
    backend_option,
    data_dir_option,
    default_of,
    detach_option,
    json_option,
    replica_options,
)


@click.command()
@click.option("--model", required=True, help="The model to adapt.")
@click.option("--task", required=True, help="The task to adapt to.")
@click.option("--pool", "pool", multiple=True, required=True, metavar="FILTER",
              help="Experts to mix (repeatable, OR'ed): 'model=llama3-8b', 'task in (gsm8k,mbpp)', or NAME:VERSION. "
                   "Experts on another model are transferred first.")
@default_of(AdaptSpec, "shots", help="Examples that drive the search.")
@default_of(AdaptSpec, "heldout", help="Test examples the result is reported on.")
@click.option("--per-matrix", is_flag=True, help="One coefficient per expert and matrix instead of per expert.")
@click.option("--normalize", is_flag=True, help="Rescale each candidate's alpha to sum to 1 (per matrix with --per-matrix).")
@default_of(AdaptSpec, "optimizer", help="cem or cmaes.")
@default_of(AdaptSpec, "population", help="Candidates per generation.")
@default_of(AdaptSpec, "elite", help="Elite fraction (CEM).")
@default_of(AdaptSpec, "iterations", help="Most generations to run.")
@default_of(AdaptSpec, "init_std", help="Initial spread of alpha.")
@click.option("--patience", type=int, help="Stop after this many generations without a better best.")
@default_of(AdaptSpec, "tolerance", help="Smaller gains do not count for --patience.")
@default_of(AdaptSpec, "mix_space", type=click.Choice(MIX_SPACES),
            help="Where experts mix: z (sum of alpha_k z_k; after renormalisation it can only shrink an expert), "
                 "logits (sigmoid of sum of alpha_k logit z_k, as the reference code; extrapolates), or strength "
                 "(the z mixture with its effect scaled by a searched s in [0, 3]).")
@default_of(AdaptSpec, "seed")
@backend_option(AdaptSpec.default("backend"), help="hf or vllm.")
@default_of(AdaptSpec, "population_eval", type=click.Choice(POPULATION_EVAL_MODES),
            help="Score a generation in shared batches (factored experts) or one candidate at a time; "
                 "auto measures both in the first generation.")
@default_of(AdaptSpec, "batch_size", help="Rows per forward pass.")
@default_of(AdaptSpec, "dtype", type=click.Choice(DTYPES),
            help="The model's weights and activations; the held-out scores' protocol.")
@data_dir_option
@click.option("--name", help="Name of the published expert [default: TASK-MODEL-adapted].")
@replica_options(AdaptSpec)
@detach_option
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

    With --replicas N a generation's candidates go to N model replicas on Ray,
    each taking the next candidate when it is free (the same scores as here).
    """
    spec = AdaptSpec(**{**options, "pool": tuple(options["pool"])})
    run_or_queue(app, spec, detach=detach, as_json=as_json, label=spec.optimizer.upper())


COMMANDS = [adapt]
