"""Sharing a registry's experts: blobs in the database, bundles, the Hugging Face Hub. Thin: the work is in
:mod:`t2reg.registry.blob_migration`, :mod:`t2reg.registry.bundles` and :mod:`t2reg.registry.hub`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import json_option
from t2reg.cli.output import emit_json, escape
from t2reg.registry.bundles import BundleImport


@click.group()
def blobs() -> None:
    """The blob store: move it into the database."""


@blobs.command()
@click.option("--to", "target", required=True, type=click.Choice(["db"]),
              help="Where to: db (the registry's own database).")
@pass_app
def migrate(app: AppContext, target: str) -> None:
    """Copy every blob the registry needs from its file store into its database, verified, then switch to it.

    Resumable: run it again after an interruption and it copies only what is missing.
    The files are left in place; remove the folder once `t2reg verify` passes.
    """
    registry = app.registry()
    source = registry.blobs.location
    report = registry.migrate_blobs_to_database()
    click.echo(f"{report.total} blob(s) in the database ({report.copied} copied now, {report.already_there} "
               f"already there); the registry now reads blobs from {registry.blobs.location}")
    if source != registry.blobs.location:
        click.echo(f"the files under {source} are no longer read; remove them once `t2reg verify` passes")



@click.group()
def bundle() -> None:
    """Bundles: a version with its card, scores, protocols, tags, aliases and lineage, in a folder."""


@bundle.command("export")
@click.argument("ref")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write (absent or empty).")
@click.option("--with-lineage", is_flag=True, help="Bundle every ancestor too (transfer sources, mixture parts).")
@json_option
@pass_app
def export_(app: AppContext, ref: str, out: Path, with_lineage: bool, as_json: bool) -> None:
    """Write REF as a bundle folder: README.md (a Hub model card), t2reg.json and the files."""
    manifest = app.registry().export_bundle(ref, out, with_lineage=with_lineage)
    if as_json:
        emit_json({"out": str(out), "root": manifest.root, "versions": [v.key for v in manifest.versions],
                   "files": len(manifest.files)})
        return
    click.echo(f"{out}: {escape(manifest.root)} with {len(manifest.versions) - 1} ancestor(s), "
               f"{len(manifest.files)} file(s)")


@bundle.command("import")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_app
def import_(app: AppContext, folder: Path, as_json: bool) -> None:
    """Import a bundle folder: every hash checked, nothing written unless all of it is good; idempotent."""
    _report_import(app.registry().import_bundle(folder), as_json)


def _report_import(done: BundleImport, as_json: bool) -> None:
    if as_json:
        emit_json(dataclasses.asdict(done))
        return
    click.echo(done.root)
    click.echo(f"{len(done.created)} version(s) added, {len(done.refs) - len(done.created)} already here; "
               f"{done.evaluations_added} score(s) added", err=True)
    for edge in done.dropped_lineage:
        click.echo(f"lineage left out (parent not bundled, not found here): {escape(edge)}", err=True)
    for alias in done.skipped_aliases:
        click.echo(f"alias not set: {escape(alias)}", err=True)


@click.group()
def hub() -> None:
    """The Hugging Face Hub (huggingface_hub: HF_TOKEN or a saved login, HF_HUB_OFFLINE honoured)."""


@hub.command("push")
@click.argument("ref")
@click.option("--repo", required=True, metavar="ORG/NAME", help="Model repository (created if missing).")
@click.option("--revision", help="Branch to commit to (created if missing) [default: main].")
@click.option("--with-lineage", is_flag=True, help="Upload every ancestor too.")
@click.option("--private", is_flag=True, default=None, help="Create the repository private.")
@pass_app
def push(app: AppContext, ref: str, repo: str, revision: str | None, with_lineage: bool, private: bool | None) -> None:
    """Upload REF as a bundle (model card, t2reg.json, files) to a Hub model repository."""
    from t2reg.registry import hub as hub_api

    done = hub_api.push(app.registry(), ref, repo, revision=revision, with_lineage=with_lineage, private=private)
    click.echo(done.commit_url)


@hub.command("pull")
@click.argument("repo", metavar="ORG/NAME")
@click.option("--revision", help="Branch, tag or commit [default: main].")
@json_option
@pass_app
def pull(app: AppContext, repo: str, revision: str | None, as_json: bool) -> None:
    """Download a bundle from the Hub (or, offline, the local cache) and import it."""
    from t2reg.registry import hub as hub_api

    _report_import(hub_api.pull(app.registry(), repo, revision=revision), as_json)


COMMANDS = [blobs, bundle, hub]
