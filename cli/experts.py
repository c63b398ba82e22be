"""Expert commands: publish, list, show, record, best, alias, tag, download, delete."""

from __future__ import annotations

from pathlib import Path

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import OutputFile, json_option, modules_option
from t2reg.cli.output import emit_fields, emit_json, emit_table
from t2reg.protocols import describe_spec
from t2reg.registry.entities import ExpertVersion
from t2reg.registry.validation import parse_sources, parse_tag

_VERSION_COLUMNS = ("ref", "model", "task", "source", "n_params", "created_at")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", help="Base model name or alias [default: the file's base_model].")
@click.option("--task", help="Task the expert is for [default: the file's task].")
@click.option("--name", help="Expert name [default: TASK-MODELALIAS].")
@click.option("--description", default="", help="Free text shown by `show`.")
@click.option("--metric", "metrics", multiple=True, metavar="TASK:METRIC=VALUE", help="A score to record (repeatable).")
@click.option("--split", help="Split the --metric scores were measured on.")
@click.option("--n", type=int, help="Number of examples behind the --metric scores.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag to set (repeatable).")
@json_option
@pass_app
def publish(app: AppContext, file: Path, model, task, name, description, metrics, split, n, tags, as_json) -> None:
    """Validate an expert file and store it as the next version of its expert.

    \b
    t2reg publish expert.safetensors --model tiny --task gsm8k --metric gsm8k:accuracy=0.79
      -> gsm8k-tiny:1
    """
    version = app.registry().publish(
        file, model=model, task=task, name=name, description=description, metrics=metrics, split=split, n=n,
        tags=dict(parse_tag(t) for t in tags),
    )
    emit_json(version.to_dict()) if as_json else click.echo(version.ref)


@click.command("list")
@click.option("--model", help="Only experts on this base model (name or alias).")
@click.option("--task", help="Only experts for this task.")
@click.option("--source", help="Only these sources, comma-separated (native,transferred,...).")
@click.option("--all-versions", is_flag=True, help="Every live version, not only the latest of each expert.")
@click.option("--where", metavar="FILTER", help="e.g. 'model=mistral-7b,task in (gsm8k,mbpp),tag.reviewed=yes'.")
@json_option
@pass_app
def list_(app: AppContext, model, task, source, all_versions, where, as_json) -> None:
    """List experts (the latest live version of each)."""
    found = app.registry().list(model=model, task=task, sources=parse_sources(source), all_versions=all_versions,
                                where=where)
    if as_json:
        emit_json([v.to_dict() for v in found])
    else:
        emit_table((v.to_dict() for v in found), _VERSION_COLUMNS, empty="no experts match")


@click.command()
@click.argument("ref")
@json_option
@pass_app
def show(app: AppContext, ref: str, as_json: bool) -> None:
    """Show one version: NAME (latest), NAME:VERSION or NAME@ALIAS."""
    version = app.registry().get(ref)
    if as_json:
        emit_json(version.to_dict())
        return
    _print_version(version)


def _print_version(v: ExpertVersion) -> None:
    emit_fields(
        [
            ("ref", v.ref), ("status", v.status), ("model", v.model), ("task", v.task), ("source", v.source),
            ("parameters", v.n_params), ("renormalize", v.renormalize), ("sha256", v.sha256),
            ("size", f"{v.size} bytes"), ("created", v.to_dict()["created_at"]), ("aliases", v.aliases), ("tags", v.tags),
            ("description", v.description or None),
        ]
    )
    if v.evaluations:
        click.echo("\nevaluations:")
        emit_table((e.to_dict() for e in v.evaluations), ("task", "metric", "value", "split", "n", "protocol", "source",
                                                     "created_at"))
    if v.lineage:
        click.echo("\nlineage:")
        emit_table((link.to_dict() for link in v.lineage), ("relation", "parent", "weight", "params"))


@click.command()
@click.argument("ref")
@click.option("--metric", "metrics", multiple=True, required=True, metavar="TASK:METRIC=VALUE",
              help="A score (repeatable); TASK may be left out for the expert's own task.")
@click.option("--split", help="Split the scores were measured on (e.g. test).")
@click.option("--n", type=int, help="Number of examples behind the scores.")
@json_option
@pass_app
def record(app: AppContext, ref: str, metrics, split, n, as_json) -> None:
    """Record evaluation scores for a version."""
    version = app.registry().record(ref, metrics, split=split, n=n)
    emit_json(version.to_dict()) if as_json else click.echo(f"recorded {len(metrics)} score(s) for {version.ref}")


@click.command()
@click.option("--task", required=True, help="Task to rank for.")
@click.option("--model", help="Only experts on this base model.")
@click.option("--metric", default="accuracy", show_default=True, help="Metric to rank by (higher is better).")
@click.option("--split", help="Rank by scores on this split only.")
@click.option("--limit", default=5, show_default=True, type=click.IntRange(min=1), help="How many to show.")
@click.option("--source", help="Only these sources, comma-separated, e.g. native,transferred.")
@click.option("--protocol",
              help="Rank scores measured under this protocol [default: the task's most used measured one].")
@json_option
@pass_app
def best(app: AppContext, task, model, metric, split, limit, source, protocol, as_json) -> None:
    """Rank live versions by their most recent score for a task and metric, under one protocol.

    Only scores measured the same way rank together: by default the task's most used measured protocol
    (`t2reg protocols --task TASK` lists them; --protocol picks another). Each row shows n and its 95%
    interval; "~" marks versions whose interval overlaps the leader's, which the data cannot tell apart
    from it (compare two of them paired with `t2reg compare`).
    """
    registry = app.registry()
    ranked = registry.best(task, metric=metric, model=model, split=split, sources=parse_sources(source), limit=limit,
                           protocol=protocol)
    if as_json:
        emit_json([r.to_dict() for r in ranked])
        return
    empty = f"no {task}:{metric} scores"
    others = [m for m in registry.metrics_for_task(task) if m != metric] if not ranked else []
    if others:
        empty += f" (this task has: {', '.join(others)}; pass --metric)"
    if ranked:
        info = registry.protocol(ranked[0].protocol)
        click.echo(f"protocol {info.id}: {describe_spec(info.spec)}")
    rows = [{**r.to_dict(), "interval95": "-" if r.interval95 is None else f"{r.interval95[0]:.3f}-{r.interval95[1]:.3f}",
             "ties_leader": "~" if r.overlaps_leader else ""} for r in ranked]
    emit_table(rows, ("rank", "ref", "model", "source", "value", "interval95", "n", "ties_leader"), empty=empty)


@click.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--force", is_flag=True, help="Move the alias if it points at another version.")
@json_option
@pass_app
def alias(app: AppContext, ref: str, alias: str, force: bool, as_json: bool) -> None:
    """Point NAME@ALIAS at a version."""
    version = app.registry().alias(ref, alias, force=force)
    emit_json(version.to_dict()) if as_json else click.echo(f"{version.name}@{alias} -> {version.ref}")


@click.command()
@click.argument("ref")
@click.argument("tags", nargs=-1, metavar="KEY=VALUE...")
@click.option("--remove", multiple=True, metavar="KEY", help="Remove a tag (repeatable).")
@json_option
@pass_app
def tag(app: AppContext, ref: str, tags, remove, as_json) -> None:
    """Set (or --remove) tags on a version."""
    if not tags and not remove:
        raise click.UsageError("give KEY=VALUE tags to set or --remove KEY")
    version = app.registry().tag(ref, dict(parse_tag(t) for t in tags), remove=remove)
    emit_json(version.to_dict()) if as_json else click.echo(f"{version.ref}: {version.tags or 'no tags'}")


@click.command()
@click.argument("ref")
@click.option("--out", required=True, type=OutputFile(), help="Where to write the file.")
@pass_app
def download(app: AppContext, ref: str, out: Path) -> None:
    """Write a version's expert file, byte-identical to what was published."""
    click.echo(str(app.registry().download(ref, out)))


@click.command()
@click.argument("ref")
@json_option
@pass_app
def delete(app: AppContext, ref: str, as_json: bool) -> None:
    """Soft-delete a version (NAME:VERSION or NAME@ALIAS); its number is never reused."""
    version = app.registry().delete(ref)
    emit_json(version.to_dict()) if as_json else click.echo(f"deleted {version.ref}")


COMMANDS = [publish, list_, show, record, best, alias, tag, download, delete]


@click.command("new-expert")
@click.option("--model", required=True, help="Base model (name or alias).")
@click.option("--out", required=True, type=OutputFile(), help="File to write.")
@click.option("--task", help="Task to record in the file.")
@modules_option
@click.option("--value", default=1.0, show_default=True, help="Every z starts at this value (1 = identity).")
@click.option("--noise", default=0.0, show_default=True, help="Standard deviation of Gaussian noise added to z.")
@click.option("--seed", default=0, show_default=True, help="Seed for the noise.")
@pass_app
def new_expert(app: AppContext, model, out, task, modules, value, noise, seed) -> None:
    """Write a new expert file for a registered model: z = VALUE (+ noise) everywhere."""
    path = app.registry().new_expert_file(model, out, task=task, modules=modules, value=value, noise=noise, seed=seed)
    click.echo(str(path))


COMMANDS.append(new_expert)
