"""The web app: dashboard pages, the JSON API under ``/api`` (with its OpenAPI document and
interactive page), static files, and ``/metrics`` when ``sqlxmq_py.metrics`` is available."""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._logging import Logger
from .context import BASE_KEY, PoolHolder, WebContext, base_path
from .docs import docs_routes
from .http import ApiError
from .operation import routes_of
from .pages import page_routes
from .render import html_error
from .replica import ReadingRequests
from .routes import OPERATIONS
from .security import Sessions

__all__ = ["api_routes", "create_app", "serve"]

_log = Logger("sqlxmq_py.web")

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the security headers above to every response (no inline script or style is ever
    needed: the pages use ``static/app.js`` and ``static/style.css`` only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault(BASE_KEY, str(scope.get("root_path", "")).rstrip("/"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def api_routes(ctx: WebContext) -> list[BaseRoute]:
    """The API's routes, relative to ``/api``: its operations, its OpenAPI document and the
    document's interactive page."""
    return [*docs_routes(), *routes_of(ctx, OPERATIONS)]


def _is_api(request: Request) -> bool:
    path = str(request.scope.get("path", ""))
    base = base_path(request.scope)
    if base and path.startswith(base):
        path = path[len(base) :]
    return path == "/api" or path.startswith("/api/")


def _metrics_app(conninfo: str) -> Any:
    """``sqlxmq_py.metrics.metrics_asgi_app(conninfo)``, or ``None`` if that is not installed."""
    try:
        module = importlib.import_module("sqlxmq_py.metrics")
        return module.metrics_asgi_app(conninfo)
    except ImportError:
        return None


def create_app(
    conninfo: str,
    *,
    token: str | None = None,
    title: str = "sqlxmq",
    read_conninfo: str | None = None,
) -> Starlette:
    """The dashboard and HTTP API as an ASGI app, mountable under any prefix.

    Args:
        conninfo: the database's connection string.
        token: the secret that state changes need (``Authorization: Bearer <token>`` for the
            API, a login for the dashboard). Without one, the app is read-only.
        title: shown in the dashboard's header and page titles.
        read_conninfo: a second server, typically a streaming replica, that every read
            (pages, the API's ``GET`` operations, ``/metrics``) goes to; changes still go to
            ``conninfo``. Each page says how fresh the replica is.

    The app opens its own ``AsyncConnectionPool`` in its lifespan. Mounted in an application
    that does not run sub-application lifespans (Starlette and FastAPI do not), it opens the
    pool on its first request; run ``app.router.lifespan_context(app)`` inside the host's
    lifespan to close it cleanly.
    """
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("token must be a non-empty string or None")
    ctx = WebContext(
        conninfo=conninfo,
        token=token,
        title=title,
        pools=PoolHolder(conninfo, read_conninfo),
        sessions=None if token is None else Sessions(token),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ctx.pools.open()
        try:
            yield
        finally:
            await ctx.pools.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        if _is_api(request):
            return ApiError(
                exc.status_code,
                codes.get(exc.status_code, "bad_request"),
                str(exc.detail),
                headers=exc.headers,
            ).response()
        return html_error(ctx, request, exc.status_code, str(exc.detail), headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.error("dashboard_error", path=request.scope.get("path"), error=repr(exc))
        if _is_api(request):
            error = ApiError(500, "internal_error", "internal error; see the server's log")
            return error.response()
        return html_error(ctx, request, 500, "Internal error; see the server's log.")

    api = Mount("/api", routes=api_routes(ctx))
    # a path parameter may hold a newline (a rate key pattern, sent as %0A): the mount's own
    # pattern must pass it on to the operations, whose parameters take any character
    api.path_regex = re.compile(api.path_regex.pattern, re.DOTALL)
    routes: list[BaseRoute] = [
        api,
        Mount("/static", app=StaticFiles(packages=[("sqlxmq_py.web", "static")]), name="static"),
        *page_routes(ctx),
    ]
    metrics = _metrics_app(read_conninfo or conninfo)
    if metrics is not None:  # an ASGI app object: Starlette hands it the raw call
        routes.append(Route("/metrics", metrics, name="metrics"))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    if ctx.pools.reads is not None:
        app.add_middleware(ReadingRequests, reads=ctx.pools.reads.open)
    app.add_middleware(SecurityHeaders)
    app.state.sqlxmq = ctx
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    conninfo: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8040,
    token: str | None = None,
    read_conninfo: str | None = None,
) -> None:
    """Serves the dashboard with uvicorn until interrupted (blocking).

    It binds to 127.0.0.1 unless told otherwise: reading needs no token, so binding to another
    interface shows your jobs (payloads included) to whoever can reach it.
    """
    import uvicorn

    if not _is_loopback(host):
        _log.warning(
            "dashboard_not_on_loopback",
            host=host,
            hint="anyone who can reach this address can read every job and payload",
        )
    _log.info(
        "dashboard_serving",
        url=f"http://{host}:{port}/",
        read_only=token is None,
    )
    uvicorn.run(
        create_app(conninfo, token=token, read_conninfo=read_conninfo),
        host=host,
        port=port,
        log_level="info",
        ws="none",
        lifespan="on",
        proxy_headers=False,
    )
