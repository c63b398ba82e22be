"""The FastAPI application: OpenAI's routes plus health, metrics and reload.

``/v1/*`` needs ``Authorization: Bearer KEY`` when the server has a key;
``/health`` and ``/metrics`` stay open (probes and scrapers). A body larger
than the limit is refused with 413 before any of it is parsed, and one that
has not all arrived within the read timeout with 408 (the connection is
closed). Every error, whatever raised it, leaves as an OpenAI-style body
(``{"error": {...}}``): malformed JSON or bad fields 400 (as OpenAI answers),
unknown model 404, a bad key 401, a full queue 503.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from t2reg.adaptation.serving.wire import ApiError, ChatRequest, CompletionRequest, error_body
from t2reg.adaptation.serving.service import Service

log = logging.getLogger("t2reg.serve")
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}


def create_app(service: Service, on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The application around ``service`` (its scheduler must be started; it is stopped at shutdown)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        loop = asyncio.get_running_loop()
        try:  # SIGHUP reloads the pool, like POST /v1/reload (main thread only)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload_quietly(service)))
        except (NotImplementedError, RuntimeError, ValueError):
            log.info("SIGHUP reload unavailable here")
        yield
        try:
            loop.remove_signal_handler(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        # In-flight requests have finished (or the grace period is over): nothing new reaches the scheduler.
        await asyncio.to_thread(service.scheduler.stop)
        if on_shutdown:
            on_shutdown()

    app = FastAPI(title="t2reg", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Gate, api_key=service.spec.api_key, max_body=service.spec.max_body,
                       read_timeout=service.spec.read_timeout, metrics=service.metrics)
    _error_handlers(app, service)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.catalog.model, "experts": len(service.catalog.experts),
                "auto": service.catalog.dispatch_plan is not None, "running": service.scheduler.running,
                "waiting": service.scheduler.waiting}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": service.catalog.to_models()}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        target = service.resolve(model_id)
        return next(m for m in service.catalog.to_models() if m["id"] == target.id)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request) -> Response:
        return await service.chat(body, request)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await service.completion(body, request)

    @app.post("/v1/reload")
    async def reload() -> dict[str, Any]:
        return await service.reload()

    return app


async def _reload_quietly(service: Service) -> None:
    try:
        await service.reload()
    except ApiError as exc:
        log.error("SIGHUP reload: %s", exc.message)


def _error_handlers(app: FastAPI, service: Service) -> None:
    def reply(request: Request, status: int, body: dict[str, Any]) -> JSONResponse:
        endpoint = ENDPOINTS.get(request.url.path)
        if endpoint:
            service.metrics.request(endpoint, "-", status)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return reply(request, exc.status, exc.body())

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return reply(request, 400, error_body("the request body is not valid JSON"))
        first = errors[0] if errors else {}
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                            for e in errors[:5])
        return reply(request, 400, error_body(message, param=where[0] if where else None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return reply(request, exc.status_code, error_body(str(exc.detail), code="not_found" if exc.status_code == 404
                                                          else None))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return reply(request, 500, error_body(f"internal error: {type(exc).__name__}: {exc}", kind="server_error"))


class Gate:
    """ASGI middleware in front of everything: the API key on /v1, the body size limit and the body deadline.

    The body is read here in full (up to the limit) and handed on, so an
    oversized upload is refused with 413 without being parsed or buffered whole,
    and one that trickles in is cut off with 408 once ``read_timeout`` seconds
    have passed (the headers have their own deadline, see server.py).
    """

    def __init__(self, app, api_key: str | None, max_body: int, read_timeout: float, metrics) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected and scope["path"].startswith("/v1"):
            if not secrets.compare_digest(headers.get(b"authorization", b""), self.expected):
                await self._refuse(scope, send, 401, error_body("invalid or missing API key (Authorization: Bearer KEY)",
                                                                code="invalid_api_key"))
                return
        declared = headers.get(b"content-length")
        try:
            too_big = declared is not None and int(declared) > self.max_body
        except ValueError:
            await self._refuse(scope, send, 400, error_body("Content-Length is not a number"))
            return
        if too_big:
            await self._refuse(scope, send, 413, self._too_big())
            return
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.read_timeout)
        except asyncio.TimeoutError:
            # The rest of the body is not waited for: the connection closes after the answer.
            await self._refuse(scope, send, 408, error_body(f"the request body did not arrive within "
                                                            f"{self.read_timeout:g} s", code="request_timeout"),
                               close=True)
            return
        if body is None:
            await self._refuse(scope, send, 413, self._too_big())
            return
        handed = False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: http.disconnect when the client goes

        await self.app(scope, replay, send)

    async def _read_body(self, receive) -> bytes | None:
        """The whole body (what came of it when the client left early); None once it grows past the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client left before sending its body
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_big(self) -> dict[str, Any]:
        return error_body(f"the request body exceeds {self.max_body} bytes", code="request_too_large")

    async def _refuse(self, scope, send, status: int, body: dict[str, Any], close: bool = False) -> None:
        endpoint = ENDPOINTS.get(scope["path"])
        if endpoint:
            self.metrics.request(endpoint, "-", status)
        headers = {"connection": "close"} if close else None
        await JSONResponse(body, status_code=status, headers=headers)(scope, _no_body, send)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.disconnect"}
