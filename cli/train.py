"""``t2reg train``: an SVF expert trained by policy gradient, published into the registry."""

from __future__ import annotations

import click

from t2reg.adaptation.evaluation.spec import DTYPES
from t2reg.adaptation.training.spec import ESTIMATORS, PARAMETRIZATIONS, TrainSpec
from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import run_or_queue
from t2reg.cli.options import backend_option, data_dir_option, default_of, detach_option, json_option


@click.command()
@click.option("--model", required=True, help="The base model (name or alias); its spectra must be decomposed.")
@click.option("--task", required=True, help="The task to train for (see `t2reg tasks list`).")
@default_of(TrainSpec, "iterations")
@default_of(TrainSpec, "examples_per_step", help="Training examples drawn for each iteration's step.")
@default_of(TrainSpec, "modules", type=click.Choice(["mlp", "attn", "all"]), help="Which matrices get a learnable vector.")
@default_of(TrainSpec, "kl", help="Weight lambda of the KL penalty to the base model.")
@default_of(TrainSpec, "lr", help="AdamW learning rate (cosine decay to 0).")
@default_of(TrainSpec, "param", type=click.Choice(PARAMETRIZATIONS),
            help="logits: z = sigmoid(p) * max_mult with nuclear renormalisation (the reference code's rule); "
                 "scale: learn z directly.")
@default_of(TrainSpec, "init", help="Initial logit p (--param logits).")
@default_of(TrainSpec, "init_scale", help="Initial z (--param scale).")
@default_of(TrainSpec, "max_mult", help="z = sigmoid(p) * max_mult (--param logits).")
@default_of(TrainSpec, "clip", help="Gradient norm clipping.")
@default_of(TrainSpec, "temperature", help="Sampling temperature of the rollouts.")
@default_of(TrainSpec, "validation", help="Validation examples for checkpoint selection.")
@default_of(TrainSpec, "eval_every", help="Iterations between validation scores.")
@click.option("--patience", type=int, help="Stop after this many validation rounds without a better score.")
@default_of(TrainSpec, "heldout", help="Test examples the result is reported on.")
@click.option("--max-new-tokens", type=int, help="Sampling budget for generation tasks [default: the task's].")
@backend_option(TrainSpec.default("sampler"), "--sampler", help="Where completions are sampled: hf or vllm.")
@default_of(TrainSpec, "estimator", type=click.Choice(ESTIMATORS),
            help="Multiple choice: exact (the expected reward over the options) or reinforce (one sampled option).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="[default: cuda if present]")
@default_of(TrainSpec, "dtype", type=click.Choice(DTYPES),
            help="The model's weights and activations (z, gradients and AdamW stay float32); the scores' protocol.")
@default_of(TrainSpec, "seed")
@data_dir_option
@click.option("--name", help="Name of the published expert [default: TASK-MODEL].")
@detach_option
@json_option
@pass_app
def train(app: AppContext, detach: bool, as_json: bool, **options) -> None:
    """Train an SVF expert by policy gradient (+1/-1 rewards, KL to the base model); publish the best checkpoint.

    On multiple-choice tasks the policy is over each question's options, scored as evaluation scores them
    (cloze); on other tasks it samples completions.

    The run is a job: each iteration is checkpointed (z, optimizer state), so
    `t2reg jobs resume ID` continues a killed run to the same result, and
    `t2reg jobs plot ID --out train.png` draws reward, validation score and KL.

    \b
    t2reg train --model smollm2-135m --task arc-easy --iterations 40 --batch-size 16
    """
    run_or_queue(app, TrainSpec(**options), detach=detach, as_json=as_json, label="train")


COMMANDS = [train]
