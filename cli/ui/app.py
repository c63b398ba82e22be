"""The web application of ``t2reg ui``: each page at its path as HTML and under ``/api`` as JSON.

Both forms of a page come from one view (:mod:`t2reg.cli.ui.views`): the template renders the object, the API
serialises it. Only GET routes read the registry (and ``POST /login`` checks a key), so nothing here can change
it. With an API key every route but the login form and the static files needs ``Authorization: Bearer KEY`` or
the cookie ``/login`` sets.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException

from t2reg import __version__
from t2reg.cli.ui import charts, views
from t2reg.cli.ui.markup import card_html
from t2reg.errors import InvalidInputError, NotFoundError, T2RegError, shown
from t2reg.registry import Registry
from t2reg.registry.entities import plain

HERE = Path(__file__).resolve().parent
COOKIE = "t2reg_ui"
LOGIN_BODY_MAX = 4096  # bytes of a login form; a key is far shorter

View = Callable[[Registry, Request], Any]


def create_app(registry: Registry, api_key: str | None = None, data_dir: str | None = None) -> FastAPI:
    """The application over an opened registry; ``api_key`` (if given) guards every page and endpoint;
    ``data_dir`` holds the evaluation data the compare page reads question texts from."""
    app = FastAPI(title="t2reg ui", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    pages = Pages(_environment())
    gate = Gate(api_key, pages)
    app.middleware("http")(gate)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _routes(app, registry, pages, gate, data_dir)
    _errors(app, pages)
    return app


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(version_url=version_url, lineage_url=lineage_url, job_url=job_url, quote=quote,
                       subject_url=subject_url,
                       line_chart=charts.line_chart, rank_profile=charts.rank_profile, lineage_svg=lineage_svg, card_html=card_html,
                       t2reg_version=__version__)
    env.filters["num"] = _number
    env.filters["interval"] = _interval
    env.filters["spread"] = _spread
    return env


class Pages:
    """Templates rendered to responses."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def render(self, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**values), status_code=code)


# -- access ------------------------------------------------------------------------------------------------------


class Gate:
    """The API key check, as HTTP middleware; with no key every request passes."""

    OPEN = ("/login", "/static/")  # the login form and its stylesheet

    def __init__(self, api_key: str | None, pages: Pages) -> None:
        self.key = api_key
        self.pages = pages
        # the cookie holds a digest of the key, not the key, so a leaked cookie file does not leak the key
        self.token = None if api_key is None else hmac.new(api_key.encode(), b"t2reg ui session",
                                                           hashlib.sha256).hexdigest()

    async def __call__(self, request: Request, call_next) -> Response:
        if self.key is None or request.url.path.startswith(self.OPEN) or self.allows(request):
            return await call_next(request)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "this registry needs an API key: send Authorization: Bearer KEY"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return self.pages.render("login.html", 401, next=_local(request.url.path), error=None, request=request)

    def allows(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), self.key.encode()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.token.encode())

    def login(self, key: str) -> str | None:
        """The session cookie's value for a right key, None for a wrong one."""
        if self.key is not None and hmac.compare_digest(key.encode(), self.key.encode()):
            return self.token
        return None


# -- routes ------------------------------------------------------------------------------------------------------


def _routes(app: FastAPI, registry: Registry, pages: Pages, gate: Gate, data_dir: str | None) -> None:
    def both(path: str, api: str, template: str, view: View) -> None:
        """A page at ``path`` and its data at ``api``, from one view."""

        def html(request: Request) -> HTMLResponse:
            return pages.render(template, page=view(registry, request), request=request)

        def data(request: Request) -> JSONResponse:
            return JSONResponse(plain(view(registry, request)))

        app.get(path, response_class=HTMLResponse, name=template)(html)
        app.get(api, name=f"api {template}")(data)

    @app.get("/", response_class=HTMLResponse)
    def experts(request: Request) -> HTMLResponse:
        where = request.query_params.get("where", "")
        try:
            page = _experts(registry, request)
        except (InvalidInputError, NotFoundError) as exc:  # a filter naming an unknown model is the filter's fault
            return pages.render("experts.html", 400, page=None, where=where, error=str(exc), request=request)
        return pages.render("experts.html", page=page, where=where, error=None, request=request)

    @app.get("/api/experts")
    def experts_data(request: Request) -> JSONResponse:
        return JSONResponse(plain(_experts(registry, request)))

    both("/experts/{name}/{version}", "/api/experts/{name}/{version}", "version.html", _version)
    both("/experts/{name}/{version}/lineage", "/api/experts/{name}/{version}/lineage", "lineage.html", _lineage)
    both("/jobs", "/api/jobs", "jobs.html", lambda reg, _request: views.jobs_page(reg))
    both("/best", "/api/best", "best.html", _best)
    both("/jobs/{job_id}", "/api/jobs/{job_id}", "job.html", _job)
    both("/compare", "/api/compare", "compare.html", lambda reg, request: _compare(reg, request, data_dir))
    both("/models", "/api/models", "models.html", lambda reg, _request: views.models_page(reg))

    @app.get("/api/jobs/{job_id}/events")
    def job_events(request: Request) -> JSONResponse:
        after = _int(request.query_params.get("after", "0"), "after")
        return JSONResponse(plain(views.job_events(registry, _job_id(request), after)))

    @app.get("/jobs/{job_id}/charts", response_class=HTMLResponse)
    def job_charts(request: Request) -> HTMLResponse:
        """The job's charts alone: what its page swaps in when new steps arrive."""
        return pages.render("job_charts.html", page=views.job_page(registry, _job_id(request)))

    @app.get("/experts/{name}/{version}/file")
    def download(request: Request) -> Response:
        ref = f"{request.path_params['name']}:{_version_number(request)}"
        data = registry.expert_bytes(ref)  # by reference through the registry: no path from the URL is opened
        filename = f"{request.path_params['name']}-{_version_number(request)}.safetensors"
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f"attachment; filename=\"{filename}\""})

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return pages.render("login.html", next=_local(request.query_params.get("next", "/")), error=None,
                            request=request)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        body = await request.body()
        form = parse_qs(body[:LOGIN_BODY_MAX].decode("utf-8", "replace"))
        target = _local(form.get("next", ["/"])[0])
        token = gate.login(form.get("key", [""])[0])
        if token is None:
            return pages.render("login.html", 401, next=target, error="wrong key", request=request)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response


def _experts(registry: Registry, request: Request) -> views.ExpertsPage:
    query = request.query_params
    sort = views.SortKey.parse(query.get("sort", views.SortKey.NAME.value), "sort column")
    return views.experts_page(registry, query.get("where", ""), sort, query.get("order", "asc") == "desc",
                              _int(query.get("page", "1"), "page"))


def _version(registry: Registry, request: Request) -> views.VersionPage:
    return views.version_page(registry, request.path_params["name"], _version_number(request))


def _lineage(registry: Registry, request: Request) -> views.LineagePage:
    return views.lineage_page(registry, request.path_params["name"], _version_number(request))


def _best(registry: Registry, request: Request) -> views.BestPage:
    return views.best_page(registry, request.query_params.get("task"), request.query_params.get("protocol"))


def _compare(registry: Registry, request: Request, data_dir: str | None) -> views.ComparePage:
    query = request.query_params
    return views.compare_page(registry, query.get("a", "").strip() or None, query.get("b", "").strip() or None,
                              query.get("protocol", "").strip() or None, data_dir)


def _job(registry: Registry, request: Request) -> views.JobPage:
    return views.job_page(registry, _job_id(request))


def _int(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise InvalidInputError(f"{what} must be a whole number, not {shown(text)}")
    return int(text)


def _version_number(request: Request) -> int:
    text = request.path_params["version"]
    if not text.isdigit() or len(text) > 9:  # no version has such a number: the page does not exist
        raise NotFoundError(f"no version {shown(text)}")
    return int(text)


def _job_id(request: Request) -> int:
    text = request.path_params["job_id"]
    if not text.isdigit() or len(text) > 9:
        raise NotFoundError(f"no job {shown(text)}")
    return int(text)


def _local(target: str) -> str:
    """Only a path of this site is a place to go after logging in (never ``//elsewhere`` or a full URL)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


# -- errors ------------------------------------------------------------------------------------------------------

_STATUS = ((NotFoundError, 404), (InvalidInputError, 400))


def _errors(app: FastAPI, pages: Pages) -> None:
    def respond(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return pages.render("error.html", status, status=status, message=message, request=request)

    @app.exception_handler(T2RegError)
    def library_error(request: Request, exc: T2RegError) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return respond(request, status, str(exc))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        response = respond(request, exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response


# -- what templates call ----------------------------------------------------------------------------------------


def version_url(ref: str) -> str:
    name, _, version = ref.rpartition(":")
    return f"/experts/{quote(name)}/{quote(version)}"


def lineage_url(ref: str) -> str:
    return version_url(ref) + "/lineage"


def subject_url(subject: str) -> str | None:
    """A compared subject's page: a version's; a base model (``base:MODEL``) has its row on /models."""
    if subject.startswith("base:"):
        return "/models"
    name, _, version = subject.rpartition(":")
    return version_url(subject) if name and version.isdigit() else None  # NAME alone, NAME@ALIAS: no link


def job_url(job_id: int | str) -> str:
    return f"/jobs/{quote(str(job_id))}"


def node_url(node: views.LineageNode) -> str:
    return job_url(node.key) if node.kind is views.NodeKind.JOB else version_url(node.key)


def lineage_svg(page: views.LineagePage) -> Markup:
    return charts.lineage_graph(page, node_url)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _interval(value: tuple[float, float] | list[float] | None) -> str:
    return "-" if not value else f"{value[0]:.3f}–{value[1]:.3f}"


def _spread(histogram: dict[str, int]) -> str:
    """How often each option was predicted, as the pages show it: ``A:3 B:1 ``."""
    return "".join(f"{option}:{count} " for option, count in histogram.items())
