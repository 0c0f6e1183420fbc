"""The OpenAPI 3.1 document of the HTTP API, generated from the operations (``api.py``) and
their models' JSON Schemas (pydantic's, which are JSON Schema 2020-12 as OpenAPI 3.1 uses): the
same declarations that validate the requests and build the answers."""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from .fields import MAX_BODY_BYTES, JobId
from .operation import Operation
from .responses import Error
from .routes import OPERATIONS, TAGS

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_MEANINGS = {
    400: "Invalid input; field names the culprit.",
    401: "Missing or wrong bearer token.",
    403: "State changes are disabled: the app was started without a token.",
    404: "No such job is queued or kept in the history.",
    409: "The job is not in a state that allows this (conflict), or it failed for good "
    "(job_failed) or was cancelled (job_cancelled); job holds its status. A bulk delete that "
    "would release ordered chains answers chains_would_be_released, with the chains.",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
    415: "The body is not application/json.",
    503: "The database is unavailable or has no sqlxmq_py schema.",
}


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema: absent stands for null, so the value is the other
    branch."""
    branches = schema.get("anyOf")
    if branches is not None:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            schema = {**rest, **kept[0]}
    if schema.get("default") is None:
        schema.pop("default", None)
    schema.pop("title", None)
    return schema


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if operation.has_id:
        parameters.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "description": operation.id_description,
                "schema": TypeAdapter(JobId).json_schema(),
            }
        )
    if operation.path_params is not None:
        schema = operation.path_params.model_json_schema(mode="validation")
        for name, prop in schema["properties"].items():
            value = _without_null(dict(prop))
            description = value.pop("description", "")
            parameters.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "description": description,
                    "schema": value,
                }
            )
    if operation.query is not None:
        schema = operation.query.model_json_schema(mode="validation")
        for name, prop in schema["properties"].items():
            value = _without_null(dict(prop))
            description = value.pop("description", "")
            parameter = {"name": name, "in": "query", "required": False, "schema": value}
            if description:
                parameter["description"] = description
            if value.get("type") == "array":
                parameter |= {"style": "form", "explode": True}
            parameters.append(parameter)
    return parameters


def _links(operation: Operation) -> dict[str, Any]:
    """From a spawned job's answer to every operation on a job."""
    return {
        other.operation_id[0].upper() + other.operation_id[1:]: {
            "operationId": other.operation_id,
            "parameters": {"id": "$response.body#/id"},
        }
        for other in OPERATIONS
        if other.path.startswith("/jobs/{id}")
    }


def _operation(operation: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (model, description) in operation.responses.items():
        responses[str(status)] = _json(refs[model, "serialization"], description)
        if operation.location:
            responses[str(status)]["headers"] = {
                "Location": {
                    "description": "The job's status URL.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
            responses[str(status)]["links"] = _links(operation)
    for status in operation.error_statuses():
        meaning = operation.meanings.get(status, _MEANINGS[status])
        responses[str(status)] = _json(refs[Error, "serialization"], meaning)
        if status == 401:
            responses["401"]["headers"] = {
                "WWW-Authenticate": {
                    "description": 'Bearer realm="sqlxmq"',
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
    document: dict[str, Any] = {"operationId": operation.operation_id, "tags": [operation.tag]}
    document["summary"] = operation.summary
    if operation.description:
        document["description"] = operation.description
    if operation.changes:
        document["security"] = [{"bearerAuth": []}]
    parameters = _parameters(operation)
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        document["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": refs[operation.body, "validation"]}},
        }
    document["responses"] = responses
    return document


@functools.cache
def _document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Error, "serialization")]
    for operation in OPERATIONS:
        if operation.body is not None:
            models.append((operation.body, "validation"))
        models += [(model, "serialization") for model, _ in operation.responses.values()]
    unique = list(dict.fromkeys(models))
    refs, definitions = models_json_schema(unique, ref_template=_REF)
    paths: dict[str, Any] = {}
    for operation in OPERATIONS:
        item = paths.setdefault(operation.path, {})
        item[operation.method.lower()] = _operation(operation, dict(refs))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sqlxmq_py HTTP API",
            "version": __version__,
            "description": "Spawn, inspect and manage sqlxmq_py jobs over HTTP. Reads are open; "
            "state changes need `Authorization: Bearer <token>`. Every error is an Error object; "
            "input that does not validate is a 400 whose field names the first culprit.",
        },
        "servers": [{"url": "/api"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token the dashboard was started with.",
                }
            },
        },
    }


def openapi_document(server_url: str = "/api") -> dict[str, Any]:
    """The OpenAPI 3.1 document, its server URL set to where the API is mounted."""
    document = copy.deepcopy(_document())
    document["servers"] = [{"url": server_url}]
    return document
