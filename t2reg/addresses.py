"""Where a server may listen: this machine only, or beyond it with a key.

``t2reg serve`` and ``t2reg ui`` both refuse to listen where other machines reach them unless every request
must carry an API key (:class:`t2reg.errors.UnsafeBindError`, exit 6); a Ray runtime on the loopback address
is joined from the loopback side. One rule for what counts as loopback, here.
"""

from __future__ import annotations

import ipaddress

from t2reg.errors import InvalidInputError, UnsafeBindError, shown


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host``: a loopback address or ``localhost``; any other name may resolve to
    an address others reach, so it counts as open."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen where other machines reach the server without a key (and a key that is only blanks)."""
    if api_key is not None and not api_key.strip():
        raise InvalidInputError("{api_key} must not be empty", options=["api_key"])
    if api_key is None and not is_loopback(host):
        raise UnsafeBindError(f"{{host}} {shown(host)} is reachable from other machines: give an {{api_key}} "
                              "that every request must carry, or listen on 127.0.0.1", options=["host", "api_key"])
