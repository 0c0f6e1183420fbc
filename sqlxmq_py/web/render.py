"""How the dashboard renders: the Jinja2 environment (autoescaped, strict about undefined
names) and its filters, the login state every page shows, error pages, and the wrapper that
turns a page handler's errors into pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..errors import ConfigurationError, PayloadError
from .context import WebContext, base_path
from .http import ApiError, database_error
from .replica import STATE
from .security import SESSION_COOKIE

__all__ = [
    "ENV",
    "FLASH_COOKIE",
    "PageHandler",
    "Session",
    "first_line",
    "html_error",
    "is_https",
    "make_environment",
    "page",
    "render",
]

FLASH_COOKIE = "sqlxmq_flash"


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 90 * 60:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 36 * 3600:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} days"
    return f"in {text}" if future else f"{text} ago"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _ts(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: timedelta | None) -> str:
    return "" if value is None else _age(value.total_seconds())


def first_line(text: str | None) -> str:
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    # a traceback's last line says what happened; a plain message's first line does
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def _approx(value: int) -> str:
    """An estimated count, to two significant digits: 1,234,567 -> "≈1,200,000"."""
    digits = len(str(value))
    rounded = round(value, -(digits - 2)) if digits > 2 else value
    return f"≈{rounded:,}"


def _channel(value: str) -> Markup:
    """A channel name for display: the default channel ``""`` is shown as (default)."""
    if value == "":
        return Markup('<span class="muted">(default)</span>')
    return Markup.escape(value)


def make_environment() -> jinja2.Environment:
    """The Jinja2 environment of the pages: autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sqlxmq_py.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=_ago,
        age=_age,
        ts=_ts,
        seconds=_seconds,
        first_line=first_line,
        channel=_channel,
        approx=_approx,
    )
    return env


ENV = make_environment()
"""The environment every page is rendered with."""


class Session:
    """The request's login state."""

    def __init__(self, ctx: WebContext, request: Request) -> None:
        self.nonce = (
            None
            if ctx.sessions is None
            else ctx.sessions.nonce(request.cookies.get(SESSION_COOKIE))
        )
        self.csrf = ""
        if self.nonce is not None and ctx.sessions is not None:
            self.csrf = ctx.sessions.csrf(self.nonce)

    @property
    def logged_in(self) -> bool:
        return self.nonce is not None


def _base(request: Request) -> str:
    return base_path(request.scope)


def _here(request: Request) -> str:
    """The request's path and query, from the ASGI scope (``request.url`` decodes the raw query
    as strict UTF-8, which a client's bytes need not be)."""
    path = str(request.scope.get("path", ""))
    raw_query = request.scope.get("query_string", b"")
    query = raw_query.decode("utf-8", "replace") if isinstance(raw_query, bytes) else ""
    return path + (f"?{query}" if query else "")


def is_https(request: Request) -> bool:
    return request.scope.get("scheme") == "https"


def render(
    ctx: WebContext,
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page, with what every page shows: title, login state, flash message."""
    session = Session(ctx, request)
    flash = request.cookies.get(FLASH_COOKIE)
    stale_session = SESSION_COOKIE in request.cookies and not session.logged_in
    base = _base(request)
    html = ENV.get_template(template).render(
        base=base,
        title=ctx.title,
        read_only=ctx.token is None,
        logged_in=session.logged_in,
        csrf=session.csrf,
        flash=unquote(flash)[:500] if flash else None,
        here=_here(request),
        replica=STATE.get(),
        **values,
    )
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    response.headers["cache-control"] = "no-store"
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=base + "/")
    if stale_session:  # forged, garbled, expired or from an old token: start afresh
        response.delete_cookie(SESSION_COOKIE, path=base + "/", httponly=True, samesite="strict")
    return response


def html_error(
    ctx: WebContext,
    request: Request,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """An error page."""
    return render(
        ctx,
        request,
        "error.html",
        status=status,
        headers=headers,
        status_code=status,
        message=message,
    )


PageHandler = Callable[[WebContext, Request], Awaitable[Response]]


def page(ctx: WebContext, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(ctx, request)
        except ApiError as exc:
            return html_error(ctx, request, exc.status, exc.detail)
        except (ConfigurationError, PayloadError) as exc:
            # input the pages did not check and the library refused: still the client's
            return html_error(ctx, request, 400, str(exc))
        except Exception as exc:
            mapped = database_error(exc)
            if mapped is None:
                raise
            return html_error(ctx, request, mapped.status, mapped.detail)

    return endpoint
