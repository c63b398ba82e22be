"""Registry upkeep: init, verify, gc and the ``db`` schema commands."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import FiniteFloat, json_option
from t2reg.cli.output import emit_json, escape
from t2reg.errors import IntegrityCheckError
from t2reg.registry import schema


@click.command()
@click.option("--blobs", "blob_root", metavar="DIR|db",
              help="Where blobs go: a folder, or `db` for the database itself (recorded, so every later "
                   "command on any machine finds them there) [the global --blobs; env T2REG_BLOB_ROOT].")
@pass_app
def init(app: AppContext, blob_root: str | None) -> None:
    """Create the registry (database schema at head, blob store, built-in models).

    The only command that makes a registry: every other one refuses a database
    that is not there, so a mistyped --home or --db never becomes a new, empty registry.
    """
    if blob_root is not None:
        app.blob_root = blob_root
    registry = app.registry(check_schema=False, create=True)
    registry.init()
    click.echo(f"registry ready: database {registry.db.display_url}, blobs in {registry.blobs.location}")


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
        for path in report.strays:
            click.echo(f"stray    {escape(path)} (not a blob; left alone)")
    if not report.ok:
        raise IntegrityCheckError(f"{len(report.missing)} missing and {len(report.corrupt)} corrupt blob(s)")


@click.command()
@click.option("--grace", default=600.0, show_default=True, type=FiniteFloat(min=0, max=1e9),
              help="Keep unreferenced files younger than this many seconds (a publish may be in flight).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--purge-deleted", is_flag=True,
              help="Also free the files of versions deleted at least --purge-grace ago (their numbers stay taken).")
@click.option("--purge-grace", default=7 * 86400.0, show_default=True, type=FiniteFloat(min=0, max=1e10),
              help="Seconds a deleted version is kept before --purge-deleted frees it.")
@click.option("--force", is_flag=True, help="Run even though this registry holds no versions at all.")
@click.option("--i-know-it-is-shared", "shared_ok", is_flag=True,
              help="Run even though the blob store is shared with registries gc cannot open (their blobs may go).")
@json_option
@pass_app
def gc(app: AppContext, grace: float, dry_run: bool, purge_deleted: bool, purge_grace: float, force: bool,
       shared_ok: bool, as_json: bool) -> None:
    """Remove blobs no version points to, and abandoned temp files.

    Refuses when the blob store is shared with a registry it cannot open, or
    when this registry holds no versions at all (a mistyped database looks so).
    """
    report = app.registry().gc(grace_seconds=grace, dry_run=dry_run, force=force, shared_ok=shared_ok,
                               purge_deleted=purge_deleted, purge_grace_seconds=purge_grace)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    if purge_deleted:
        click.echo(f"{'would purge' if dry_run else 'purged'} {len(report.purged)} deleted version(s)"
                   + (f": {', '.join(report.purged)}" if report.purged else ""))
    click.echo(f"{verb} {len(report.removed)} blob(s) ({report.bytes_freed} bytes) and {report.temp_files_removed} "
               f"temp file(s); kept {report.kept_young} younger than {grace:g}s")
    if report.shared_with:
        click.echo(f"honoured the references of {len(report.shared_with)} other registr(y/ies) sharing the store: "
                   f"{', '.join(escape(s) for s in report.shared_with)}")
    for path in report.strays:
        click.echo(f"stray    {escape(path)} (not a blob; left alone)")


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
