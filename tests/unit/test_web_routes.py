"""The dashboard's API routes and defaults (no database)."""

from __future__ import annotations

import inspect
import re

from starlette.routing import Route

from sqlxmq_py.web.app import api_routes
from sqlxmq_py.web.openapi import openapi_document


def test_openapi_document_lists_exactly_the_routes() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    from sqlxmq_py.web.context import PoolHolder, WebContext

    ctx = WebContext(conninfo="", token=None, title="", pools=PoolHolder(""))
    routes = {
        # a {name:sqlxmq_text} parameter (one that may hold '/') is {name} in the document
        (re.sub(r":sqlxmq_text}", "}", route.path), method.lower())
        for route in api_routes(ctx)
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD" and route.path not in ("/openapi.json", "/docs")
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    for path, item in document["paths"].items():
        for method, operation in item.items():
            changes = method in ("post", "put", "delete")
            assert ("security" in operation) == changes, (path, method)
            assert ("401" in operation["responses"]) == changes, (path, method)


def test_the_dashboard_listens_on_loopback_by_default() -> None:
    from sqlxmq_py.web import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
