"""Running the ``t2reg ui`` application: the safety check on where it listens, then uvicorn until SIGTERM.

The ready line ``t2reg: ui on http://HOST:PORT`` on stdout says it accepts requests (``port`` 0 picks a free
one, and the line says which), as ``t2reg serve``'s does.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Callable

from t2reg.errors import InvalidInputError, UnsafeBindError, shown
from t2reg.registry import Registry


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host``: a loopback address or ``localhost``; any other name may resolve to
    an address others reach, so it counts as open."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to open the registry to the network without a key (and a key that is only blanks)."""
    if api_key is not None and not api_key.strip():
        raise InvalidInputError("{api_key} must not be empty", options=["api_key"])
    if api_key is None and not is_loopback(host):
        raise UnsafeBindError(f"{{host}} {shown(host)} is reachable from other machines: give an {{api_key}} "
                              "that every request must carry, or listen on 127.0.0.1", options=["host", "api_key"])


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
