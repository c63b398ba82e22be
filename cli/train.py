"""``t2reg train``: an SVF expert trained by policy gradient, published into the registry."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import queue_job, run_here
from t2reg.cli.output import json_option


@click.command()
@click.option("--model", required=True, help="The base model (name or alias); its spectra must be decomposed.")
@click.option("--task", required=True, help="The task to train for (see `t2reg tasks list`).")
@click.option("--iterations", default=40, show_default=True)
@click.option("--batch-size", default=16, show_default=True, help="Training examples per iteration.")
@click.option("--modules", type=click.Choice(["mlp", "attn", "all"]), default="mlp", show_default=True,
              help="Which matrices get a learnable vector.")
@click.option("--kl", default=0.1, show_default=True, help="Weight lambda of the KL penalty to the base model.")
@click.option("--lr", default=2e-3, show_default=True, help="AdamW learning rate (cosine decay to 0).")
@click.option("--param", type=click.Choice(["logits", "scale"]), default="logits", show_default=True,
              help="logits: z = sigmoid(p) * max_mult with nuclear renormalisation (the reference code's rule); "
                   "scale: learn z directly.")
@click.option("--init", default=0.1, show_default=True, help="Initial logit p (--param logits).")
@click.option("--init-scale", default=1.0, show_default=True, help="Initial z (--param scale).")
@click.option("--clip", default=1.0, show_default=True, help="Gradient norm clipping.")
@click.option("--validation", default=32, show_default=True, help="Validation examples for checkpoint selection.")
@click.option("--eval-every", default=1, show_default=True, help="Iterations between validation scores.")
@click.option("--patience", type=int, help="Stop after this many validation rounds without a better score.")
@click.option("--heldout", default=100, show_default=True, help="Test examples the result is reported on.")
@click.option("--max-new-tokens", type=int, help="Sampling budget for generation tasks [default: the task's].")
@click.option("--sampler", default="hf", show_default=True, help="Where completions are sampled: hf or vllm.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="[default: cuda if present]")
@click.option("--seed", default=0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Evaluation data [env T2REG_DATA_DIR].")
@click.option("--name", help="Name of the published expert [default: TASK-MODEL].")
@click.option("--detach", is_flag=True, help="Only queue the job; a `t2reg worker` runs it.")
@json_option
@pass_app
def train(app: AppContext, detach: bool, as_json: bool, **options) -> None:
    """Train an SVF expert with REINFORCE (+1/-1 rewards, KL to the base model) and publish the best checkpoint.

    The run is a job: each iteration is checkpointed (z, optimizer state), so
    `t2reg jobs resume ID` continues a killed run to the same result, and
    `t2reg jobs plot ID --out train.png` draws reward, validation score and KL.

    \b
    t2reg train --model smollm2-135m --task arc-easy --iterations 40 --batch-size 16
    """
    from t2reg.adaptation.training import TrainSpec

    spec = TrainSpec(**options)
    if detach:
        queue_job(app, "train", spec.to_dict(), as_json)
        return
    run_here(app, "train", spec.to_dict(), label="train", as_json=as_json)


COMMANDS = [train]
