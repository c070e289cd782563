"""`create_web_app(services)`: the dashboard, an application of its own that `server.app`
mounts under `/ui`.

Its own application so that its errors are pages (the API's stay JSON), its responses
carry the browser's security headers, and its routes stay out of the OpenAPI document.
Each area of the dashboard is one module of `server.web.pages` with a `router` and
optionally a `NAV` entry; a new area (approvals, environments, runners, secrets, webhook
deliveries) is a new module added to `AREAS`.
"""

from __future__ import annotations

import logging
from types import ModuleType
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipline.engine.errors import RateLimited, ServiceError, Unauthenticated
from shipline.server.deps import Services
from shipline.server.errors import STATUS_BY_CODE, request_id
from shipline.server.web.pages import (
    approvals,
    artifacts,
    audit,
    auth,
    deliveries,
    environments,
    live,
    projects,
    runners,
    runs,
    secrets,
    tokens,
    users,
)
from shipline.server.web.render import TEMPLATES, NavItem, Pages, pages, path
from shipline.server.web.session import SignInRequired, clear_session

log = logging.getLogger("shipline.server")

AREAS: tuple[ModuleType, ...] = (
    auth,
    projects,
    runs,
    live,
    artifacts,
    approvals,
    environments,
    secrets,
    deliveries,
    runners,
    audit,
    tokens,
    users,
)
STATIC = TEMPLATES.parent / "static"

# Scripts and styles only from files of this origin: no inline script, no style attribute.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the security headers to every response (plain ASGI: streams stay streams);
    pages and streams are not to be cached, static files may be."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{scope.get('root_path', '')}/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", []) if h[0] not in dict(SECURITY_HEADERS)
                ]
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(request: Request, status: int, title: str, message: str) -> Response:
    context = {
        "title": title,
        "message": message,
        "status": status,
        "request_id": request_id(request),
    }
    headers: dict[str, str] = {}
    return pages(request).render(request, "error.html", context, status=status, headers=headers)


def _sign_in(request: Request) -> Response:
    """To the sign-in page, coming back here afterwards (for a page, not a form)."""
    target = path(request, "login")
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?" + urlencode({"next": here})
    response = RedirectResponse(target, status_code=303)
    clear_session(response, request)
    return response


_TITLES = {
    401: "Sign in required",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    422: "Invalid request",
    429: "Too many attempts",
}


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, Unauthenticated):
        return _sign_in(request)
    status = STATUS_BY_CODE.get(exc.code, 400)
    response = _page(request, status, _TITLES.get(status, "Error"), exc.message)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds() + 0.999)))
    return response


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    return _sign_in(request)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return _page(request, 422, "Invalid request", f"{where}: {first.get('msg', 'invalid value')}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return _page(request, exc.status_code, _TITLES.get(exc.status_code, "Error"), message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.exception("unexpected error in %s %s (request %s)", request.method, request.url.path, rid)
    return _page(request, 500, "Something went wrong", f"internal error (request id {rid})")


def create_web_app(services: Services, areas: tuple[ModuleType, ...] = AREAS) -> FastAPI:
    """The dashboard over the API's services; `areas` are the page modules to serve."""
    web = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    nav: list[NavItem] = [m.NAV for m in areas if isinstance(getattr(m, "NAV", None), NavItem)]
    web.state.services = services
    web.state.pages = Pages(nav)
    web.add_exception_handler(SignInRequired, _sign_in_required)
    web.add_exception_handler(ServiceError, _service_error)
    web.add_exception_handler(RequestValidationError, _validation_error)
    web.add_exception_handler(StarletteHTTPException, _http_error)
    web.add_exception_handler(Exception, _unexpected)
    web.add_middleware(SecurityHeaders)
    web.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in areas:
        web.include_router(module.router)
    return web
