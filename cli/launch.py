"""The ``t2reg`` console entry point: Ctrl-C at any moment is one line on stderr and exit 130.

Importing the command line takes a while (click, SQLAlchemy, numpy); Python's own
handler would print a traceback for a Ctrl-C that lands in the middle of it, or in
the interpreter's shutdown. So a quiet handler covers both, and Python's usual one
(KeyboardInterrupt, which :func:`t2reg.cli.main.main` turns into the same line)
covers the command itself, where cleanup may need to run. This module imports
nothing heavy and must stay so.
"""

from __future__ import annotations

import os
import signal


def main() -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background: keep ignoring
        return _main()
    signal.signal(signal.SIGINT, _interrupted)
    try:
        from t2reg.cli.main import main as run
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run()
    finally:
        signal.signal(signal.SIGINT, _interrupted)  # atexit hooks and thread joins at shutdown


def _main() -> None:
    from t2reg.cli.main import main as run

    run()


def _interrupted(_signum: int, _frame: object) -> None:
    try:
        os.write(2, b"t2reg: error: interrupted\n")
    finally:
        os._exit(130)
