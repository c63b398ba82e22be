"""Running the ``t2reg ui`` application: the safety check on where it listens, then uvicorn until SIGTERM.

The ready line ``t2reg: ui on http://HOST:PORT`` on stdout says it accepts requests (``port`` 0 picks a free
one, and the line says which), as ``t2reg serve``'s does.
"""

from __future__ import annotations

import sys
from typing import Callable

from t2reg.addresses import check_bind
from t2reg.registry import Registry


def serve(registry: Registry, host: str, port: int, api_key: str | None,
          announce: Callable[[str], None] | None = None, data_dir: str | None = None) -> None:
    """Serve the UI over ``registry`` until SIGTERM or SIGINT; returns normally after shutting down."""
    import uvicorn

    from t2reg.adaptation.serving.server import bind, run_until_stopped
    from t2reg.cli.ui.app import create_app

    check_bind(host, api_key)
    sock = bind(host, port)
    config = uvicorn.Config(create_app(registry, api_key, data_dir), log_level="warning", access_log=False, lifespan="off")
    run_until_stopped(config, sock, lambda url: f"t2reg: ui on {url}", announce)
    print("t2reg: ui stopped", file=sys.stderr, flush=True)
