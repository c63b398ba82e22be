"""``t2reg model``: register and inspect base models."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.output import emit_fields, emit_json, emit_table, json_option
from t2reg.registry.entities import ModelInfo


@click.group()
def model() -> None:
    """Register and inspect base models."""


@model.command("add")
@click.argument("source")
@click.option("--alias", "aliases", multiple=True, help="A short name for the model (repeatable).")
@click.option("--name", help="Registered name [default: the directory name or hub id].")
@click.option("--revision", help="Hub revision (commit, branch or tag).")
@json_option
@pass_app
def add(app: AppContext, source: str, aliases, name, revision, as_json) -> None:
    """Register a base model.

    \b
    SOURCE is one of:
      ./dir           a local model directory with config.json (weights optional)
      llama3-8b       a built-in shape table (llama3-8b, mistral-7b, llama3-70b,
                      smollm2-135m, gemma3-270m): no download needed
      owner/name      a Hugging Face id (needs the network)
    """
    info = app.registry().add_model(source, name=name, aliases=aliases, revision=revision)
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
    info = app.registry().get_model(ref)
    if as_json:
        emit_json(info.to_dict())
    else:
        emit_fields(info.to_dict().items())


def _label(info: ModelInfo) -> str:
    aliases = f" (aliases: {', '.join(info.aliases)})" if info.aliases else ""
    return f"{info.name}{aliases}: {info.architecture}, {info.num_layers} layers, {info.num_matrices} matrices"


COMMANDS = [model]
