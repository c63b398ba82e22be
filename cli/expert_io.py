"""Moving experts in and out of t2reg's format: import-reference and export."""

from __future__ import annotations

from pathlib import Path

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import json_option
from t2reg.cli.output import emit_json


@click.command("import-reference")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="The base model the file was trained on.")
@click.option("--task", required=True, help="The task it was trained for.")
@click.option("--name", help="Expert name [default: TASK-MODELALIAS].")
@click.option("--max-mult", default=1.0, show_default=True, help="The reference code's max_mult: z = sigmoid(p) * max_mult.")
@click.option("--metric", "metrics", multiple=True, metavar="TASK:METRIC=VALUE", help="A score to record (repeatable).")
@json_option
@pass_app
def import_reference(app: AppContext, file: Path, model, task, name, max_mult, metrics, as_json) -> None:
    """Publish a reference-code expert (policy_params.pt or learnable_params.pt).

    Read with torch.load(weights_only=True) only: a file that needs full
    unpickling is refused.
    """
    from t2reg.adaptation.interop.reference import import_reference as run

    version = run(app.registry(), file, model, task, name=name, max_mult=max_mult, metrics=metrics)
    emit_json(version.to_dict()) if as_json else click.echo(version.ref)


@click.command()
@click.argument("ref")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@pass_app
def export(app: AppContext, ref: str, out: Path, dtype: str) -> None:
    """Save the base model with the expert merged in (loads with from_pretrained)."""
    import torch

    from t2reg.adaptation.interop.export import export_merged

    click.echo(str(export_merged(app.registry(), ref, out, dtype=getattr(torch, dtype))))


COMMANDS = [import_reference, export]
