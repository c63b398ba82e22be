"""Registry upkeep: init, verify, gc and the ``db`` schema commands."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import json_option
from t2reg.cli.output import emit_json
from t2reg.errors import IntegrityCheckError
from t2reg.registry import schema


@click.command()
@pass_app
def init(app: AppContext) -> None:
    """Create the registry (database schema at head, blob store, built-in models)."""
    registry = app.registry(check_schema=False)
    registry.init()
    settings = registry.settings
    click.echo(f"registry ready: database {registry.db.display_url}, blobs {settings.blob_root}")


@click.command()
@json_option
@pass_app
def verify(app: AppContext, as_json: bool) -> None:
    """Re-hash every blob a version points to; exit non-zero on any missing or corrupt blob."""
    report = app.registry().verify()
    if as_json:
        emit_json({**report.to_dict(), "ok": report.ok})
    else:
        click.echo(f"checked {report.checked} blob(s): {len(report.missing)} missing, {len(report.corrupt)} corrupt, "
                   f"{len(report.unreferenced)} unreferenced (t2reg gc removes those)")
        for sha in report.missing:
            click.echo(f"missing  {sha}")
        for sha in report.corrupt:
            click.echo(f"corrupt  {sha}")
    if not report.ok:
        raise IntegrityCheckError(f"{len(report.missing)} missing and {len(report.corrupt)} corrupt blob(s)")


@click.command()
@click.option("--grace", default=600.0, show_default=True, type=click.FloatRange(min=0),
              help="Keep unreferenced files younger than this many seconds (a publish may be in flight).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@json_option
@pass_app
def gc(app: AppContext, grace: float, dry_run: bool, as_json: bool) -> None:
    """Remove blobs no version points to, and abandoned temp files."""
    report = app.registry().gc(grace_seconds=grace, dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(report.removed)} blob(s) ({report.bytes_freed} bytes) and {report.temp_files_removed} "
               f"temp file(s); kept {report.kept_young} younger than {grace:g}s")


@click.group()
def db() -> None:
    """Database schema: upgrade, downgrade, current revision."""


@db.command()
@click.argument("revision", default="head")
@pass_app
def upgrade(app: AppContext, revision: str) -> None:
    """Upgrade the schema (default: to head)."""
    registry = app.registry(check_schema=False)
    schema.upgrade(registry.db, revision)
    click.echo(f"at revision {schema.current_revision(registry.db)}")


@db.command()
@click.argument("revision")
@pass_app
def downgrade(app: AppContext, revision: str) -> None:
    """Downgrade the schema to REVISION ('base' removes every table)."""
    registry = app.registry(check_schema=False)
    schema.downgrade(registry.db, revision)
    click.echo(f"at revision {schema.current_revision(registry.db) or 'base'}")


@db.command()
@pass_app
def current(app: AppContext) -> None:
    """Print the schema revision the database is at, and head."""
    registry = app.registry(check_schema=False)
    now = schema.current_revision(registry.db)
    head = schema.head_revision()
    click.echo(f"{now or 'base (empty)'}{' (head)' if now == head else f' (head is {head})'}")


COMMANDS = [init, verify, gc, db]
