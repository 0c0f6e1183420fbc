"""The API's own documentation: the generated OpenAPI document at ``/api/openapi.json`` and an
interactive page (Swagger UI) at ``/api/docs``, whose scripts and styles are served from the
installed ``swagger-ui-py`` package (the ``dashboard`` extra), never from a CDN."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .context import base_path
from .http import ApiError, ApiResponse
from .openapi import openapi_document
from .render import ENV

__all__ = ["docs_routes", "swagger_ui_assets"]


def swagger_ui_assets() -> Path | None:
    """The directory of Swagger UI's files in the ``swagger-ui-py`` package, if installed
    (found without importing the package)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(next(iter(spec.submodule_search_locations))) / "static"
    return directory if (directory / "swagger-ui-bundle.js").is_file() else None


async def get_openapi(request: Request) -> Response:
    return ApiResponse(openapi_document(server_url=base_path(request.scope) + "/api"))


async def docs_page(request: Request) -> Response:
    if swagger_ui_assets() is None:
        raise ApiError(
            404,
            "not_found",
            "the API's interactive page needs the swagger-ui-py package: pip install "
            "'sqlxmq_py[dashboard]' (the document itself is at /api/openapi.json)",
        )
    base = base_path(request.scope)
    html = ENV.get_template("api_docs.html").render(base=base)
    # under the app's own content security policy: Swagger UI needs no inline script or
    # style attribute (it sets styles through the DOM), so nothing is relaxed for it
    return HTMLResponse(html, headers={"cache-control": "no-store"})


def docs_routes() -> list[BaseRoute]:
    """The document, the page, and (when installed) Swagger UI's files, relative to ``/api``."""
    routes: list[BaseRoute] = [
        Route("/openapi.json", get_openapi, methods=["GET"], name="openapi"),
        Route("/docs", docs_page, methods=["GET"], name="api_docs"),
    ]
    assets = swagger_ui_assets()
    if assets is not None:
        routes.append(Mount("/docs/assets", app=StaticFiles(directory=assets), name="docs_assets"))
    return routes
