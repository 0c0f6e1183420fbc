"""The API's own documentation and the one definition behind it: the generated OpenAPI
document, the interactive page served from the installed package (never a CDN), and the
models that both validate requests and describe them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from sqlxmq_py.web import create_app
from sqlxmq_py.web.docs import swagger_ui_assets
from sqlxmq_py.web.openapi import openapi_document
from sqlxmq_py.web.routes import OPERATIONS

from .conftest import AUTH, TOKEN


async def test_docs_page_loads_only_files_of_the_app(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # the app's own policy, not relaxed for the page
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy
    assert 'data-url="/api/openapi.json"' in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert asset.content, source
    bundle = await client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text[:5000]
    missing = await client.get("/api/docs/assets/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    escape = await client.get("/api/docs/assets/../../../setup.cfg")
    assert escape.status_code == 404


def test_swagger_ui_is_a_version_that_renders_openapi_3_1() -> None:
    assets = swagger_ui_assets()
    assert assets is not None, "the dashboard extra installs swagger-ui-py"
    bundle = (assets / "swagger-ui-bundle.js").read_text(encoding="utf-8", errors="replace")
    # Swagger UI knows OpenAPI 3.1 from version 5 on (4.x says the version is not supported)
    assert "isOAS31" in bundle


async def test_docs_page_follows_the_mount_prefix(dsn: str) -> None:
    dashboard = create_app(dsn, token=TOKEN)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with dashboard.router.lifespan_context(dashboard):
            yield

    host = Starlette(routes=[Mount("/admin/queue", app=dashboard)], lifespan=lifespan)
    async with (
        host.router.lifespan_context(host),
        httpx.AsyncClient(transport=httpx.ASGITransport(host), base_url="http://h") as client,
    ):
        page = await client.get("/admin/queue/api/docs")
        assert 'data-url="/admin/queue/api/openapi.json"' in page.text
        for source in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert source.startswith("/admin/queue/"), source
            assert (await client.get(source)).status_code == 200, source
        overview = await client.get("/admin/queue/")
        assert 'href="/admin/queue/api/docs"' in overview.text


def test_the_document_is_made_from_the_operations_and_their_models() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for operation in OPERATIONS:
        entry = document["paths"][operation.path][operation.method.lower()]
        assert entry["operationId"] == operation.operation_id
        if operation.body is not None:
            body = entry["requestBody"]["content"]["application/json"]["schema"]
            assert body == {"$ref": f"#/components/schemas/{operation.body.__name__}"}
            assert entry["requestBody"]["required"] == operation.body_required
        for status, (model, _) in operation.responses.items():
            answer = entry["responses"][str(status)]["content"]["application/json"]["schema"]
            assert answer == {"$ref": f"#/components/schemas/{model.__name__}"}
        documented_errors = {int(s) for s in entry["responses"]} - set(operation.responses)
        assert documented_errors == set(operation.error_statuses())
        if operation.query is not None:
            names = {p["name"] for p in entry["parameters"] if p["in"] == "query"}
            assert names == set(operation.query.model_fields)
    spawn = schemas["SpawnRequest"]
    assert spawn["additionalProperties"] is False
    assert spawn["required"] == ["name"]
    assert spawn["not"]["required"] == ["delay", "run_at"]
    assert spawn["then"]["required"] == ["job_key"]
    assert schemas["Error"]["required"] == ["error", "detail", "field"]


async def test_validation_errors_name_the_field_and_say_what_is_expected(
    client: httpx.AsyncClient,
) -> None:
    async def error(body: Any) -> dict[str, Any]:
        response = await client.post("/api/jobs", json=body, headers=AUTH)
        assert response.status_code == 400, response.text
        result: dict[str, Any] = response.json()
        return result

    unknown = await error({"name": "x", "colour": "red"})
    assert unknown["field"] == "colour"
    assert "channel_name" in unknown["detail"]  # the fields that exist
    missing = await error({"channel_name": "c"})
    assert missing == {"error": "bad_request", "detail": "name: is required", "field": "name"}
    nul = await error({"name": "a\x00b"})
    assert nul["detail"] == "name: must not contain NUL characters"
    bounds = await error({"name": "x", "priority": 2**31})
    assert "2147483647" in bounds["detail"]
    text_number = await error({"name": "x", "retries": "3"})  # no silent conversion
    assert text_number["field"] == "retries"
    # but JSON Schema counts 3.0 as an integer, so the API does too (schemathesis sends it)
    spawned = await client.post("/api/jobs", json={"name": "x", "retries": 3.0}, headers=AUTH)
    assert spawned.status_code == 201, spawned.text
    assert (await error({"name": "x", "retries": 3.5}))["field"] == "retries"
    nested = await error({"name": "x", "after": [str(AUTH), "0190"]})
    assert nested["field"] == "after"
    assert "UUID" in nested["detail"]
    for query, field in (
        (b"limit=%C2%B2", "limit"),
        (b"limit=5_0", "limit"),
        (b"limit=%2B5", None),
    ):
        response = await client.get("/api/jobs?" + query.decode())
        if field is None:
            assert response.status_code == 200
        else:
            assert response.status_code == 400
            assert response.json()["field"] == field


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/docs"])
async def test_the_docs_need_no_token_and_change_nothing(dsn: str, path: str) -> None:
    read_only = create_app(dsn)
    async with (
        read_only.router.lifespan_context(read_only),
        httpx.AsyncClient(transport=httpx.ASGITransport(read_only), base_url="http://t") as anon,
    ):
        assert (await anon.get(path)).status_code == 200
        assert (await anon.post(path)).status_code == 405
