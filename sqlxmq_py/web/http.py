"""The HTTP API's plumbing: reading a request into a typed model (bounded body, JSON only, every
validation error answered as a 400 naming its field), the error answer, and the bearer token.
"""

from __future__ import annotations

import json
import re
import typing
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import ConfigurationError, PayloadError, SchemaError
from .context import WebContext
from .fields import MAX_BODY_BYTES, NO_NUL, JobId
from .security import bearer_matches

__all__ = [
    "ApiError",
    "ApiResponse",
    "answer",
    "bad",
    "database_error",
    "field_errors",
    "path_id",
    "read_body",
    "read_query",
    "require_token",
    "validate",
]

M = TypeVar("M", bound=BaseModel)
_LENGTH = re.compile(r"[0-9]{1,19}", re.ASCII)
_JOB_ID: TypeAdapter[Any] = TypeAdapter(JobId)


class ApiError(Exception):
    """An error answered as an ``Error`` object (``{"error", "detail", "field"}``) with an HTTP
    status."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> Response:
        """The error as a JSON response."""
        body = {"error": self.code, "detail": self.detail, "field": self.field, **self.extra}
        return ApiResponse(body, status_code=self.status, headers=self.headers)


class ApiResponse(JSONResponse):
    """JSON with non-ASCII characters escaped, so any text (even a lone surrogate in an echoed
    value) encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def answer(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A response model as JSON."""
    return ApiResponse(model.model_dump(mode="json"), status_code=status, headers=headers)


def bad(field: str | None, detail: str) -> ApiError:
    """A 400 naming the field at fault."""
    return ApiError(400, "bad_request", detail, field=field)


def _message(error: ErrorDetails, known: list[str]) -> str:
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == NO_NUL:
        return "must not contain NUL characters"
    if kind == "string_unicode":
        return "must be valid Unicode (no lone surrogates)"
    if kind == "extra_forbidden":
        return f"unknown field; the fields are: {', '.join(known) or 'none'}"
    if kind == "missing":
        return "is required"
    return message


def invalid(exc: ValidationError, model: type[BaseModel]) -> ApiError:
    """The first validation error, as a 400 naming the field at fault."""
    error = exc.errors(include_url=False, include_input=False)[0]
    location = error["loc"]
    field = str(location[0]) if location else None
    detail = _message(error, list(model.model_fields))
    return bad(field, f"{field}: {detail}" if field else detail)


def validate(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` as ``model``, or a 400 naming the first field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, model) from None


@contextmanager
def field_errors(field: str) -> Iterator[None]:
    """Turns the library's own validation errors into a 400 naming ``field``."""
    try:
        yield
    except (ConfigurationError, PayloadError) as exc:
        raise bad(field, str(exc)) from exc


def database_error(exc: Exception) -> ApiError | None:
    """A 503 for a database that is down or has no schema; ``None`` for other errors."""
    missing = SchemaError | psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction
    if isinstance(exc, missing):
        return ApiError(
            503,
            "unavailable",
            "the database has no sqlxmq_py schema: run `sqlxmq migrate` or sqlxmq_py.migrate()",
        )
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        return ApiError(503, "unavailable", f"the database is unavailable: {exc}")
    return None


def require_token(ctx: WebContext, request: Request) -> None:
    """Refuses a state change without the bearer token (403 when no token is configured)."""
    if ctx.token is None:
        raise ApiError(
            403,
            "forbidden",
            "state changes are disabled: this dashboard was started without a token "
            "(pass token= to create_app or serve, or --token to `sqlxmq dashboard`)",
        )
    if not bearer_matches(ctx.token, request.headers.get("authorization")):
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint changes the queue: send the header 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="sqlxmq"'},
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")


async def _json_object(request: Request, *, required: bool) -> dict[str, Any] | None:
    """The request's JSON object (``None`` for an empty optional body), read at most
    ``MAX_BODY_BYTES`` far."""
    length = request.headers.get("content-length")
    if length is not None:
        if not _LENGTH.fullmatch(length.strip()):
            raise bad("content-length", "the Content-Length header must be a number of bytes")
        if int(length) > MAX_BODY_BYTES:
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise bad(None, "the body must be a JSON object")
        return None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be sent as application/json, not {media_type or 'without a type'}",
        )
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise bad(None, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise bad(None, f"the body must be a JSON object, got {type(value).__name__}")
    return value


async def read_body(request: Request, model: type[M], *, required: bool) -> M:
    """The request's body as ``model`` (an optional body may be left empty)."""
    data = await _json_object(request, required=required)
    return validate(model, data or {})


def read_query(request: Request, model: type[M]) -> M:
    """The request's query parameters as ``model``: list fields take every value of a repeated
    parameter, others the last; parameters the model does not know are ignored."""
    params = request.query_params
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        values = params.getlist(name)
        if values:
            data[name] = values if _is_list(info.annotation) else values[-1]
    return validate(model, data)


def _is_list(annotation: Any) -> bool:
    """Whether a field's type is a list (or an optional list)."""
    if typing.get_origin(annotation) is list:
        return True
    return any(typing.get_origin(arg) is list for arg in typing.get_args(annotation))


def path_id(request: Request) -> uuid.UUID:
    """The ``{id}`` of the path as a job id, or a 400 naming ``id``."""
    try:
        job_id: uuid.UUID = _JOB_ID.validate_python(request.path_params["id"])
    except ValidationError as exc:
        detail = _message(exc.errors(include_url=False)[0], [])
        raise bad("id", f"id: {detail}") from None
    return job_id
