"""Options more than one command takes, declared once; defaults come from the job specs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import click

from t2reg.errors import shown
from t2reg.files import ends_with_separator
from t2reg.specs import JobSpec

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# How the library's parameter names are written on the command line, where that is not --name-with-dashes.
FLAGS = {"source_model": "--from", "target": "--to", "ref": "REF", "metrics": "--metric", "pool": "--pool FILTER",
         "shared_ok": "--i-know-it-is-shared", "ray_address": "--ray"}


def flag(parameter: str) -> str:
    """The command-line spelling of a library parameter (for error messages)."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


class FiniteFloat(click.ParamType):
    """A float within [min, max]; refuses nan and infinities, which slip past click.FloatRange."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None) -> None:
        self.min, self.max = min, max

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
            self.fail(f"{value!r} is not in the range {self.min}..{self.max}", param, ctx)
        return number


class OutputFile(click.Path):
    """A file path to write: not empty, not a directory (t2reg.files refuses other non-regular files)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("the path is empty", param, ctx)
        if isinstance(value, str) and ends_with_separator(value):  # Path would drop the '/' and write a file "DIR"
            self.fail(f"{shown(value)} ends in '/', which names a folder; give the file's own name", param, ctx)
        return super().convert(value, param, ctx)


def default_of(spec: type[JobSpec], name: str, *decls: str, **kwargs: Any) -> Decorator:
    """An option whose default is the spec's (shown in --help)."""
    return click.option(*(decls or (flag(name),)), default=spec.default(name), show_default=True, **kwargs)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                               help="Evaluation data [env T2REG_DATA_DIR].")
detach_option = click.option("--detach", is_flag=True, help="Only queue the job; a `t2reg worker` runs it.")
device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), help="[default: cuda if present]")
dtype_option = click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32",
                            show_default=True, help="The model's weights and activations (the output projection and "
                            "log-softmax stay float32); part of the score's protocol.")
modules_option = click.option("--modules", type=click.Choice(["mlp", "attn", "all"]), default="mlp", show_default=True,
                              help="Which matrices (the paper adapts the MLP).")
strategy_option = click.option(
    "--strategy", default="prompt", show_default=True, metavar="prompt|classifier|fixed:REF",
    help="First pass: prompt (the model names the category in \\boxed{}), classifier (the trained "
         "dispatch expert picks it), or fixed:REF (always that expert).")
pool_option = click.option("--pool", multiple=True, metavar="FILTER",
                           help="Experts to route to (repeatable); the best per task category is used.")


def backend_option(default: str = "hf", name: str = "--backend", help: str = "Inference backend: hf or vllm.") -> Decorator:
    return click.option(name, default=default, show_default=True, help=help)


def replica_options(spec: type[JobSpec]) -> Decorator:
    """--replicas, --ray and --threads: one job spread over model replicas on Ray (``pip install 't2reg[ray]'``)."""
    options = [
        default_of(spec, "replicas", type=int, metavar="N",
                   help="Spread the work over N model replicas (Ray actors, one GPU or --threads CPU threads each) "
                        "[default: none, run in this process]."),
        default_of(spec, "ray_address", "--ray", "ray_address", metavar="ADDRESS",
                   help="With --replicas: an existing Ray cluster (ray://head:10001 or head:6379) "
                        "[default: a local Ray runtime]."),
        default_of(spec, "threads", type=int, metavar="N", help="With --replicas: CPU threads per replica [default: 1]."),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply
