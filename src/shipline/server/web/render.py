"""Pages from Jinja2 templates: one environment per dashboard, autoescaping everything.

Every value reaches HTML through Jinja's escaping (`autoescape=True` for every template,
`StrictUndefined` so a misspelt name fails a test instead of rendering blank); nothing is
marked safe. Templates get the request, the signed-in user, the session's CSRF token, the
navigation and helpers to build links (`path`, `query`) that respect where the dashboard
is mounted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from shipline.engine.access import Principal
from shipline.engine.principal import utc
from shipline.server.web.status import badge, duration

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class NavItem:
    """An entry of the top navigation: `route` names the page it opens; `admin_only`
    entries are shown to admins only (their pages check again on the server)."""

    label: str
    route: str
    admin_only: bool = False


def path(request: Request, route: str, /, **params: object) -> str:
    """The path of a dashboard route, under wherever the dashboard is mounted."""
    found = request.app.url_path_for(route, **{k: str(v) for k, v in params.items()})
    return f"{request.scope.get('root_path', '')}{found}"


def query(request: Request, **changes: object) -> str:
    """The current page's query string with some parameters changed (None removes one)."""
    values: dict[str, str] = dict(request.query_params)
    for name, value in changes.items():
        if value is None or value == "":
            values.pop(name, None)
        else:
            values[name] = str(value)
    return "?" + urlencode(values) if values else "?"


def when(value: datetime | None) -> str:
    """A stored time as `2026-11-27 06:30:01 UTC`."""
    return "" if value is None else utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else utc(value).isoformat()


def span(value: timedelta | None) -> str:
    """A length of time as `duration` writes it; empty for None."""
    return "" if value is None else duration(value.total_seconds())


def branch(ref: str) -> str:
    """`refs/heads/main` → `main`, `refs/tags/v1` → `v1`; other refs as they are."""
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


class Pages:
    """Renders the dashboard's templates."""

    def __init__(self, nav: Sequence[NavItem]) -> None:
        self.nav = tuple(nav)
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            duration=duration,
            when=when,
            iso=iso,
            branch=branch,
            badge=lambda x: badge(*x),
            span=span,
        )

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        principal: Principal | None = getattr(request.state, "principal", None)
        nav = [
            n
            for n in self.nav
            if principal is not None and (principal.is_admin or not n.admin_only)
        ]
        values: dict[str, Any] = {
            "request": request,
            "me": principal,
            "csrf": getattr(request.state, "csrf", ""),
            "nav": nav,
            "path": lambda route, **params: path(request, route, **params),
            "query": lambda **changes: query(request, **changes),
            **(context or {}),
        }
        html = self.env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def pages(request: Request) -> Pages:
    found: Pages = request.app.state.pages
    return found
