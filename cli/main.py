"""The ``t2reg`` command: global options, command registration, and error handling.

Commands are thin: each parses its options, makes one library call and prints.
Errors become one line on stderr and an exit code (2 usage, 3 not found,
4 invalid input, 5 conflict, 6 an unsafe listening address, 1 anything else); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback

import click

from t2reg import __version__
from t2reg.cli.context import AppContext
from t2reg.cli.options import flag
from t2reg.cli.output import escape
from t2reg.errors import T2RegError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(file_okay=False), help="Registry home [env T2REG_HOME; default ~/.t2reg].")
@click.option("--db", "database_url", metavar="URL",
              help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/db "
                   "[env T2REG_DATABASE_URL; default SQLite under the home].")
@click.option("--blobs", "blob_root", type=click.Path(file_okay=False),
              help="Blob store directory [env T2REG_BLOB_ROOT; default <home>/blobs].")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="t2reg")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None, blob_root: str | None, debug: bool) -> None:
    """t2reg: a registry for Transformer-Squared SVF experts.

    \b
    Publish experts, rank them per task, carry them between base models.
    Start with `t2reg init`, then `t2reg model add` and `t2reg publish`.
    """
    app = AppContext(home, database_url, blob_root, debug)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register_commands() -> None:
    from t2reg.cli import (adapt, admin, demo, dispatch, evaluation, expert_io, experts, jobs, models, serve, sharing,
                           train, transfer)
    from t2reg.cli.ui import command as ui

    modules = (admin, experts, models, expert_io, sharing, transfer, evaluation, adapt, train, dispatch, serve, jobs,
               ui, demo)
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("T2REG_DEBUG") == "1"
    sys.exit(_run(args, debug))


def _run(args: list[str], debug: bool) -> int:
    try:
        cli.main(args=args, prog_name="t2reg", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group (`t2reg`, `t2reg jobs`): its help, as click does
        click.echo(exc.ctx.get_help(), err=True)
        return EXIT_USAGE
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        return _fail(f"{exc.format_message()}{hint}", EXIT_USAGE, debug)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code, debug)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", EXIT_INTERRUPTED, debug)
    except T2RegError as exc:
        return _fail(error_line(exc), exc.exit_code, debug)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks for users
        return _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1, debug)


def error_line(exc: T2RegError) -> str:
    """A library error in the CLI's words: its options as flags, its remedy as the command a user types."""
    message = exc.render(flag)
    if exc.remedy is None:
        return message
    command = " ".join(shlex.quote(word) for word in exc.remedy.words(flag))
    return f"{message}; {exc.remedy.does}: `t2reg {command}`"


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    click.echo(f"t2reg: error: {escape(message)}", err=True)
    return code
