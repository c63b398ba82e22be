"""``t2reg model``: register and inspect base models."""

from __future__ import annotations

from pathlib import Path

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import device_option, json_option, modules_option
from t2reg.cli.output import emit_fields, emit_json, emit_table
from t2reg.registry.entities import ModelInfo


@click.group()
def model() -> None:
    """Register and inspect base models."""


@model.command("add")
@click.argument("source")
@click.option("--alias", "aliases", multiple=True, help="A short name for the model (repeatable).")
@click.option("--name", help="Registered name [default: the directory name or hub id].")
@click.option("--revision", help="Hub revision (commit, branch or tag).")
@click.option("--gguf", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A GGUF file with the weights: dequantised once into <home>/models, then registered as SOURCE.")
@json_option
@pass_app
def add(app: AppContext, source: str, aliases, name, revision, gguf, as_json) -> None:
    """Register a base model.

    \b
    SOURCE is one of:
      ./dir           a local model directory with config.json (weights optional)
      llama3-8b       a built-in shape table (llama3-8b, mistral-7b, llama3-70b,
                      smollm2-135m, gemma3-270m): no download needed
      owner/name      a Hugging Face id (needs the network)
    With --gguf, SOURCE is the name to give the converted model (a built-in
    alias gains the weights):  t2reg model add smollm2-135m --gguf SmolLM2.Q4_1.gguf
    """
    if gguf is not None:
        from t2reg.adaptation.models import add_gguf_model

        info = add_gguf_model(app.registry(), source, gguf, tuple(aliases))
    else:
        info = app.registry().add_model(source, name=name, aliases=aliases, revision=revision)
    emit_json(info.to_dict()) if as_json else click.echo(_label(info))


@model.command("decompose")
@click.argument("ref")
@modules_option
@device_option
@pass_app
def decompose(app: AppContext, ref: str, modules: str, device: str | None) -> None:
    """Compute the SVD of the model's matrices once and cache it (resumable).

    Spectra go to <home>/spectra/<model>/; an interrupted run picks up at the
    first layer it had not finished.
    """
    from tqdm import tqdm

    from t2reg.adaptation.models import decompose_model

    spectra = decompose_model(app.registry(), ref, modules, device,
                              progress=lambda it: tqdm(it, desc=f"SVD {modules} layers", unit="layer"))
    click.echo(f"{len(spectra.names())} matrices decomposed at {spectra.root} (fingerprint {spectra.fingerprint[:12]})")


@model.command("derive")
@click.argument("source")
@click.option("--name", required=True, help="Name of the derived model.")
@click.option("--noise", type=float, required=True, help="Relative Frobenius size of the noise, e.g. 0.02.")
@click.option("--seed", default=0, show_default=True)
@modules_option
@json_option
@pass_app
def derive(app: AppContext, source: str, name: str, noise: float, seed: int, modules: str, as_json: bool) -> None:
    """Register a copy of SOURCE whose adapted matrices carry seeded Gaussian noise: the positive control
    for transfer (an ordered transfer to it should keep an expert's effect, a shuffled one lose it).

    \b
    t2reg model derive smollm2-135m --name smollm2-noise2 --noise 0.02 && t2reg model decompose smollm2-noise2
    """
    from t2reg.adaptation.models.noisy import add_noisy_model

    info = add_noisy_model(app.registry(), source, name, noise, seed, modules)
    emit_json(info.to_dict()) if as_json else click.echo(_label(info))


@model.command("list")
@json_option
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """List registered base models."""
    models = app.registry().list_models()
    if as_json:
        emit_json([m.to_dict() for m in models])
    else:
        emit_table((m.to_dict() for m in models), ("name", "aliases", "architecture", "num_layers", "num_matrices", "source"))


@model.command("show")
@click.argument("ref")
@json_option
@pass_app
def show(app: AppContext, ref: str, as_json: bool) -> None:
    """Show one base model (name or alias)."""
    registry = app.registry()
    info = registry.get_model(ref)
    scores = [e.to_dict() for e in registry.model_evaluations(ref)]
    if as_json:
        emit_json({**info.to_dict(), "evaluations": scores})
        return
    emit_fields(info.to_dict().items())
    if scores:
        click.echo("\nevaluations (base model, no expert):")
        emit_table(scores, ("task", "metric", "value", "split", "n", "protocol", "source", "created_at"))


def _label(info: ModelInfo) -> str:
    aliases = f" (aliases: {', '.join(info.aliases)})" if info.aliases else ""
    return f"{info.name}{aliases}: {info.architecture}, {info.num_layers} layers, {info.num_matrices} matrices"


COMMANDS = [model]
