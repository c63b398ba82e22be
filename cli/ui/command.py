"""``t2reg ui``: the registry in a browser, read-only."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import data_dir_option

DEFAULT_PORT = 8300


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; one other machines reach needs --api-key.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port (the ready line says which).")
@click.option("--api-key", envvar="T2REG_UI_API_KEY",
              help="Require 'Authorization: Bearer KEY' (or a login at /login) on every page [env T2REG_UI_API_KEY].")
@data_dir_option
@pass_app
def ui(app: AppContext, host: str, port: int, api_key: str | None, data_dir: str | None) -> None:
    """Browse the registry: experts, a version's scores, z profiles and lineage, jobs as they run.

    Pages are HTML; each page's data is also JSON under /api (/api/experts, /api/experts/NAME/VERSION,
    /api/jobs/ID/events?after=N, /api/compare?a=X&b=Y&protocol=ID, /api/models, ...). Nothing is written
    to the registry and nothing is evaluated: the compare page reads recorded per-question results, and shows
    the questions' texts from --data-dir when given. Listens on 127.0.0.1 unless --host says otherwise, and
    refuses another address without --api-key.

    \b
    t2reg ui --port 8300     # then open http://127.0.0.1:8300
    """
    from t2reg.cli.ui.server import check_bind, serve

    check_bind(host, api_key)  # before opening the registry: a refused start touches nothing
    serve(app.registry(), host, port, api_key, data_dir=data_dir)


COMMANDS = [ui]
