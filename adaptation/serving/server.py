"""Loading a server and running it: ``serve(registry, spec)`` is all of ``t2reg serve``.

The model is loaded and the pool read before the socket accepts anything; a
line ``t2reg: serving MODEL on http://HOST:PORT/v1`` on stdout says the server
is ready (``port`` 0 picks a free one, and the line says which). SIGTERM (or
SIGINT) stops accepting connections, lets requests in flight finish for up to
``grace`` seconds, stops the scheduler and returns, so the process exits 0.
SIGHUP re-reads the pool, as ``POST /v1/reload`` does.

HTTP/1.1 is spoken by h11 (uvicorn's pure-Python protocol, whatever else is
installed): it refuses request headers over 16 KiB. A connection whose
request line and headers have not all arrived ``read_timeout`` seconds after
it opened (or after its previous answer) is closed; uvicorn itself closes only
connections that send nothing at all, so a client sending a byte a second
would otherwise hold one for ever. The body's deadline is the app's (Gate).
A request that arrives while more than ``max_connections`` connections are
open gets 503 (OpenAI-style) and its connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from typing import Any, Callable

from t2reg.adaptation.backends import open_for
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.serving.catalog import load_catalog
from t2reg.adaptation.serving.scheduler import make_scheduler
from t2reg.adaptation.serving.metrics import Metrics
from t2reg.adaptation.serving.wire import error_body
from t2reg.adaptation.serving.service import Service
from t2reg.adaptation.serving.spec import ServeSpec
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.registry import Registry
from t2reg.spectra import Spectra

log = logging.getLogger("t2reg.serve")


def open_service(registry: Registry, spec: ServeSpec) -> Service:
    """Read the pool, load the model into the backend, start the scheduler."""
    spec.check(registry)
    catalog, experts = load_catalog(registry, spec.model, spec.pool, spec.strategy)
    spectra = _spectra(registry, spec.model, needed=bool(experts))
    options = {"dtype": spec.dtype, "batch_size": spec.max_batch, **({"device": spec.device} if spec.device else {})}
    backend = open_for(registry, spec.model, spec.backend, **options)
    metrics = Metrics()
    try:
        scheduler = make_scheduler(backend, spectra, experts, max_batch=spec.max_batch, max_queue=spec.max_queue,
                                   max_kv_tokens=spec.max_kv_tokens, on_step=metrics.batch_rows.observe)
    except BaseException:
        backend.close()
        raise
    return Service(registry, spec, scheduler.start(), catalog, metrics)


def _spectra(registry: Registry, model: str, needed: bool) -> Spectra | None:
    """The model's spectra; a model without experts to serve may lack them (a reload then asks for them)."""
    try:
        return load_spectra(model, registry)
    except NotFoundError:
        if needed:
            raise
        return None


def serve(registry: Registry, spec: ServeSpec, announce: Callable[[str], None] | None = None) -> None:
    """Run the server until SIGTERM/SIGINT; returns normally after a graceful shutdown."""
    import uvicorn

    from t2reg.adaptation.serving.app import create_app

    logging.basicConfig(level=spec.log_level.upper(), format="t2reg serve %(levelname)s %(message)s")
    spec.check(registry)
    sock = bind(spec.host, spec.port)  # before loading the model: a taken port fails fast
    try:
        service = open_service(registry, spec)
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(create_app(service), log_level=spec.log_level, timeout_graceful_shutdown=spec.grace,
                            access_log=spec.log_level in ("debug", "info"), lifespan="on",
                            http=http_protocol(spec.read_timeout, spec.max_connections))
    try:
        run_until_stopped(config, sock, lambda url: f"t2reg: serving {spec.model} "
                                                    f"({len(service.catalog.experts)} experts) on {url}/v1", announce)
    finally:
        service.scheduler.release()
    print("t2reg: server stopped", file=sys.stderr, flush=True)


def http_protocol(timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers take longer than ``timeout`` seconds
    to arrive (counted from the connection's start, or from its previous answer), and answering 503 to a
    request that arrives while more than ``max_connections`` are open (uvicorn's own limit answers in plain
    text)."""
    from starlette.responses import JSONResponse
    from uvicorn.protocols.http.h11_impl import H11Protocol

    overloaded = JSONResponse(error_body(f"the server has {max_connections} connections open; try again later",
                                        kind="server_error", code="overloaded"),
                              status_code=503, headers={"connection": "close"})

    class Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            app = self.app

            async def headers_arrived(scope, receive, send) -> None:
                # uvicorn calls the app as soon as a request's headers are complete: the deadline is met.
                self._disarm()
                if len(self.connections) > max_connections:
                    await overloaded(scope, receive, send)
                else:
                    await app(scope, receive, send)

            self.app = headers_arrived

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                log.info("closing a connection whose request headers took over %ss", timeout)
                self.transport.close()

    return Protocol


def run_until_stopped(config: Any, sock: socket.socket, ready: Callable[[str], str],
                      announce: Callable[[str], None] | None = None) -> None:
    """Run a uvicorn ``config`` on the bound ``sock`` until SIGTERM or SIGINT, announcing ``ready(url)`` once it
    accepts requests (stdout by default: the line a parent process waits for); closes ``sock``. Both of t2reg's
    servers (``serve`` and ``ui``) run this way."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    say = announce or (lambda line: print(line, flush=True))

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                say(ready(url))

    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler makes that
    # a normal return (exit 0 after a graceful SIGTERM) instead of death by the default handler.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
