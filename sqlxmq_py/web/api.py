"""The HTTP JSON API under ``/api``, for producers and tools in any language.

Reads are open and change nothing; every state change, and waiting for a job's result (which
registers interest in the job), needs ``Authorization: Bearer <token>``. Errors are JSON
objects ``{"error": code, "detail": message, "field": name or null}``; ``openapi.py`` describes
every endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._aio import within
from ..admin import (
    JobState,
    JobStatus,
    attempt_errors,
    blocked_chains,
    cancel,
    job_status,
    list_jobs,
    purge,
    queue_counts,
    retry,
    throughput,
)
from ..builder import JobBuilder, JobKeyMode
from ..errors import (
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    PayloadError,
    SchemaError,
)
from ..results import wait_for_result
from . import queries
from .context import WebContext, base_path
from .encode import (
    blocked_chain_json,
    bucket_json,
    count_json,
    details_json,
    iso,
    purge_json,
    status_json,
)
from .openapi import (
    MAX_BODY_BYTES,
    MAX_IDS,
    MAX_LIST_LIMIT,
    MAX_RESULT_TIMEOUT_S,
    MAX_SECONDS,
    MAX_THROUGHPUT_MINUTES,
    MIN_POSITIVE_SECONDS,
    RUN_AT_YEARS,
    SPAWN_FIELDS,
    openapi_document,
)
from .security import bearer_matches

__all__ = ["ApiError", "api_routes", "page_jobs", "query_text"]

STATES: tuple[str, ...] = tuple(JobState)
KEY_MODES: tuple[str, ...] = get_args(JobKeyMode)
_FINISHED = frozenset({"failed", "completed", "cancelled"})
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RFC3339 = re.compile(
    r"^(\d{4})-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_INT = re.compile(r"^[+-]?\d{1,12}$", re.ASCII)
_LENGTH = re.compile(r"[0-9]{1,19}", re.ASCII)
_PRIORITY_BOUND = 2**31 - 1
_INDEXED_FIELDS = (
    ("job_key", ("job_key",)),
    ("throttle", ("job_key",)),
    ("ordered", ("channel_name", "channel_args")),
    ("ready", ("channel_name", "channel_args")),
    ("scheduled", ("channel_name",)),
    ("admin", ("channel_name",)),
    ("name", ("name",)),
)
"""(part of an index's name, the spawn fields it holds), to name the field whose text was too
long for an index entry."""


class ApiError(Exception):
    """An error answered as ``{"error", "detail", "field"}`` with an HTTP status."""

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


def bad(field: str | None, detail: str) -> ApiError:
    """A 400 naming the field at fault."""
    return ApiError(400, "bad_request", detail, field=field)


@contextmanager
def field_errors(field: str) -> Iterator[None]:
    """Turns the library's validation errors into a 400 naming ``field``."""
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


Handler = Callable[[WebContext, Request], Awaitable[Response]]


def _endpoint(ctx: WebContext, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(ctx, request)
        except ApiError as exc:
            return exc.response()
        except (ConfigurationError, PayloadError) as exc:
            # every input is checked before it reaches the library, which checks again: should
            # one slip through, it is still the client's input, not a server error
            return bad(None, str(exc)).response()
        except (psycopg.Error, PoolTimeout, SchemaError) as exc:
            mapped = database_error(exc)
            if mapped is None:
                raise
            return mapped.response()

    return endpoint


# --- reading requests ---------------------------------------------------------------------------


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


async def json_body(request: Request, *, required: bool) -> dict[str, Any] | None:
    """The request's JSON object (``None`` for an empty optional body)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not _LENGTH.fullmatch(length.strip()):
            raise bad("content-length", "the Content-Length header must be a number of bytes")
        if int(length) > MAX_BODY_BYTES:
            raise ApiError(
                413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(
                413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes"
            )
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


def _check_unicode(field: str, value: str) -> str:
    if "\x00" in value:
        raise bad(field, f"{field} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise bad(field, f"{field} must be valid Unicode (no lone surrogates)") from exc
    return value


def _text(body: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise bad(field, f"{field} is required")
        return None
    if not isinstance(value, str):
        raise bad(field, f"{field} must be a string, got {json.dumps(value)[:80]}")
    return _check_unicode(field, value)


def _int(body: Mapping[str, Any], field: str, minimum: int, maximum: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema counts 3.0 as an integer
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(field, f"{field} must be an integer, got {json.dumps(value)[:80]}")
    if not minimum <= value <= maximum:
        raise bad(field, f"{field} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool(body: Mapping[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad(field, f"{field} must be true or false, got {json.dumps(value)[:80]}")
    return value


def _check_seconds(field: str, value: float, minimum: float) -> timedelta:
    if not math.isfinite(value) or not minimum <= value <= MAX_SECONDS:
        raise bad(
            field, f"{field} must be between {minimum} and {MAX_SECONDS} seconds, got {value}"
        )
    return timedelta(seconds=value)


def _number(body: Mapping[str, Any], field: str, minimum: float, maximum: float) -> float:
    """A number field within bounds (``minimum`` when absent)."""
    value = body.get(field)
    if value is None:
        return minimum
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(field, f"{field} must be a number, got {json.dumps(value)[:80]}")
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise bad(field, f"{field} must be between {minimum:g} and {maximum:g}, got {value}")
    return float(value)


def _duration(body: Mapping[str, Any], field: str, *, positive: bool = False) -> timedelta | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(field, f"{field} must be a number of seconds, got {json.dumps(value)[:80]}")
    return _check_seconds(field, value, MIN_POSITIVE_SECONDS if positive else 0)


def parse_uuid(field: str, value: object) -> uuid.UUID:
    """A job id in the canonical 8-4-4-4-12 hexadecimal form."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        shown = value if isinstance(value, str) else json.dumps(value)
        raise bad(field, f"{field} must be a UUID like 0190f3c4-...-..., got {shown[:80]!r}")
    return uuid.UUID(value)


def _run_at(value: str) -> datetime:
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise bad(
            "run_at",
            f"run_at must be an RFC 3339 date-time with an offset "
            f"(e.g. 2030-01-01T12:00:00Z), got {value[:80]!r}",
        )
    first, last = RUN_AT_YEARS
    if not first <= int(match.group(1)) <= last:
        raise bad("run_at", f"run_at must be in the years {first} to {last}, got {value[:80]!r}")
    try:
        # in UTC: RFC 3339 allows offsets up to 23:59, PostgreSQL only up to 15:59
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except ValueError as exc:
        raise bad("run_at", f"run_at is not a valid date-time: {exc}") from exc


def _ids(body: Mapping[str, Any], field: str, *, required: bool) -> list[uuid.UUID]:
    value = body.get(field)
    if value is None:
        if required:
            raise bad(field, f"{field} is required")
        return []
    if not isinstance(value, list):
        raise bad(field, f"{field} must be a list of job ids")
    if len(value) > MAX_IDS:
        raise bad(field, f"{field} must have at most {MAX_IDS} job ids, got {len(value)}")
    return [parse_uuid(field, item) for item in value]


def _headers(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad("headers", "headers must be an object of strings")
    if len(value) > 100:
        raise bad("headers", f"headers must have at most 100 entries, got {len(value)}")
    for name, text in value.items():
        _check_unicode("headers", name)
        if not isinstance(text, str):
            raise bad("headers", f"headers: {name!r} must be a string, got {json.dumps(text)[:80]}")
        _check_unicode("headers", text)
    return dict(value)


def _check_only(body: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad(
            unknown[0],
            f"unknown field {unknown[0]!r}; the fields are: {', '.join(sorted(known))}",
        )


def build_spawn(body: Mapping[str, Any]) -> JobBuilder:
    """A ``JobBuilder`` from a spawn request (the ``SpawnRequest`` schema)."""
    _check_only(body, SPAWN_FIELDS)
    name = _text(body, "name", required=True)
    assert name is not None
    with field_errors("name"):
        builder = JobBuilder(name)
    job_id = body.get("id")
    if job_id is not None:
        builder.set_id(parse_uuid("id", job_id))
    for field, setter in (
        ("channel_name", builder.set_channel_name),
        ("channel_args", builder.set_channel_args),
        ("dead_letter", builder.set_dead_letter),
    ):
        text = _text(body, field)
        if text is not None:
            with field_errors(field):
                setter(text)
    if "payload" in body:
        with field_errors("payload"):
            builder.set_json(body["payload"])
    encoded = _text(body, "payload_base64")
    if encoded is not None:
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad("payload_base64", f"payload_base64 is not valid base64: {exc}") from exc
        builder.set_raw_bytes(raw)
    delay = _duration(body, "delay")
    run_at_text = _text(body, "run_at")
    if delay is not None and run_at_text is not None:
        raise bad("run_at", "give delay or run_at, not both")
    if delay is not None:
        with field_errors("delay"):
            builder.set_delay(delay)
    if run_at_text is not None:
        run_at = _run_at(run_at_text)
        with field_errors("run_at"):
            builder.set_run_at(run_at)
    priority = _int(body, "priority", -_PRIORITY_BOUND, _PRIORITY_BOUND)
    if priority is not None:
        builder.set_priority(priority)
    retries = _int(body, "retries", 0, 2**31 - 2)
    if retries is not None:
        builder.set_retries(retries)
    for field, duration_setter, positive in (
        ("retry_backoff", builder.set_retry_backoff, False),
        ("lease", builder.set_lease, True),
        ("retain_for", builder.set_retain_for, False),
    ):
        duration = _duration(body, field, positive=positive)
        if duration is not None:
            with field_errors(field):
                duration_setter(duration)
    ordered = _bool(body, "ordered")
    if ordered is not None:
        builder.set_ordered(ordered)
    job_key = _text(body, "job_key")
    mode = _text(body, "job_key_mode") or "replace"
    if mode not in KEY_MODES:
        raise bad("job_key_mode", f"job_key_mode must be one of {', '.join(KEY_MODES)}")
    throttle = _duration(body, "throttle", positive=True)
    if throttle is not None and job_key is None:
        raise bad("throttle", "throttle needs a job_key: the window is per key")
    if job_key is not None:
        with field_errors("job_key"):
            builder.set_job_key(job_key, mode, throttle=throttle)  # type: ignore[arg-type]
    after = _ids(body, "after", required=False)
    after_failed = _bool(body, "run_after_failed_parents")
    if after or after_failed is not None:
        builder.set_after(after, run_after_failed_parents=bool(after_failed))
    for header, text in _headers(body).items():
        builder.set_header(header, text)
    return builder


def query_text(request: Request, name: str) -> str | None:
    """A query parameter's text (the last if repeated), or ``None``; 400 naming it if it holds
    a NUL or a lone surrogate."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return _check_unicode(name, values[-1])


def _query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    text = query_text(request, name)
    if text is None:
        return default
    if not _INT.fullmatch(text) or not minimum <= int(text) <= maximum:
        raise bad(name, f"{name} must be an integer from {minimum} to {maximum}, got {text[:40]!r}")
    return int(text)


def list_filters(request: Request) -> dict[str, Any]:
    """The filters of a job list request (``state`` repeated, ``channel_name``, ``name``,
    ``job_key``, ``limit``, ``before``)."""
    states = [_check_unicode("state", s) for s in request.query_params.getlist("state")]
    for state in states:
        if state not in STATES:
            raise bad("state", f"unknown state {state[:40]!r}; the states are: {', '.join(STATES)}")
    before = query_text(request, "before")
    return {
        "states": states or None,
        "channel_name": query_text(request, "channel_name"),
        "name": query_text(request, "name"),
        "job_key": query_text(request, "job_key"),
        "limit": _query_int(request, "limit", 50, 1, MAX_LIST_LIMIT),
        "before": None if before is None else parse_uuid("before", before),
    }


async def page_jobs(
    pool: AsyncConnectionPool[Any],
    *,
    states: list[str] | None,
    channel_name: str | None,
    name: str | None,
    job_key: str | None,
    limit: int,
    before: uuid.UUID | None,
) -> tuple[list[JobStatus], uuid.UUID | None]:
    """One page of jobs, newest first, and the ``before`` of the next page (``None`` on the
    last page)."""
    rows = await list_jobs(
        pool,
        states=None if states is None else cast("list[JobState]", states),
        channel_name=channel_name,
        name=name,
        job_key=job_key,
        limit=limit + 1,  # one more, to know whether a next page exists
        before=before,
    )
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


# --- endpoints ----------------------------------------------------------------------------------


async def get_openapi(ctx: WebContext, request: Request) -> Response:
    return ApiResponse(openapi_document(server_url=base_path(request.scope) + "/api"))


async def spawn_job(ctx: WebContext, request: Request) -> Response:
    require_token(ctx, request)
    body = await json_body(request, required=True)
    assert body is not None
    builder = build_spawn(body)
    pool = await ctx.pools.open()
    try:
        job_id = await builder.spawn(pool)
    except psycopg.errors.UniqueViolation as exc:
        raise ApiError(409, "conflict", "a job with this id already exists", field="id") from exc
    except psycopg.errors.ProgramLimitExceeded as exc:
        # a text too long for an index entry (about 2,700 bytes): which one, the index says
        message = str(exc.diag.message_primary or exc)
        fields = next((f for index, f in _INDEXED_FIELDS if index in message), ())
        field = max(fields, key=lambda f: len(str(body.get(f) or "")), default=None)
        raise bad(field, f"{field or 'a value'} is too long for the queue: {message}") from exc
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        # not expected: every option is checked above within the schema's bounds
        raise bad(None, f"the database refused the job's options: {exc}") from exc
    location = f"{base_path(request.scope)}/api/jobs/{job_id}"
    return ApiResponse({"id": str(job_id)}, status_code=201, headers={"Location": location})


async def get_jobs(ctx: WebContext, request: Request) -> Response:
    filters = list_filters(request)
    pool = await ctx.pools.open()
    jobs, next_before = await page_jobs(pool, **filters)
    return ApiResponse(
        {
            "jobs": [status_json(j) for j in jobs],
            "next_before": None if next_before is None else str(next_before),
        }
    )


def _path_id(request: Request) -> uuid.UUID:
    return parse_uuid("id", request.path_params["id"])


async def _status_or_404(pool: AsyncConnectionPool[Any], job_id: uuid.UUID) -> JobStatus:
    status = await job_status(pool, job_id)
    if status is None:
        raise ApiError(
            404, "not_found", f"job {job_id} is neither queued nor kept in the history", field="id"
        )
    return status


async def get_job(ctx: WebContext, request: Request) -> Response:
    job_id = _path_id(request)
    pool = await ctx.pools.open()
    return ApiResponse(status_json(await _status_or_404(pool, job_id)))


async def get_job_details(ctx: WebContext, request: Request) -> Response:
    job_id = _path_id(request)
    pool = await ctx.pools.open()
    status = await _status_or_404(pool, job_id)
    details = await queries.job_details(pool, job_id)
    chain = await queries.job_chain(pool, job_id)
    parents, children = await queries.job_links(pool, job_id)
    errors = await attempt_errors(pool, job_id)
    return ApiResponse(details_json(status, details, chain, parents, children, errors))


def _cancellation(exc: BaseException) -> BaseException | None:
    """The cancellation that ``exc`` was raised while handling, if any (re-raised as it was, so
    that the cancel scope that caused it recognises it)."""
    seen: BaseException | None = exc.__context__
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, asyncio.CancelledError):
            return seen
        seen = seen.__context__
    task = asyncio.current_task()
    return asyncio.CancelledError() if task is not None and task.cancelling() else None


async def _wait(ctx: WebContext, job_id: uuid.UUID, timeout: float) -> Any:
    """``wait_for_result``, holding one of the few waiting turns while it waits."""
    pool = await ctx.pools.open()
    waiters = ctx.pools.waiters
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    acquired = False
    if not waiters.locked():
        await waiters.acquire()
        acquired = True
    elif timeout > 0:
        try:
            await within(waiters.acquire(), timeout)
            acquired = True
        except TimeoutError:
            pass
    try:
        remaining = max(0.0, deadline - loop.time()) if acquired else 0.0
        return await wait_for_result(pool, job_id, remaining)
    except psycopg.OperationalError as exc:
        # Cancelled while waiting (the client went away, a server timeout): psycopg closes the
        # connection and wait_for_result's UNLISTEN then fails on it, hiding the cancellation.
        cancelled = _cancellation(exc)
        if cancelled is not None:
            raise cancelled from None
        raise
    finally:
        if acquired:
            waiters.release()


def _result(status: JobStatus) -> Response:
    """A job's outcome as it is now: its result, 202 while it is unfinished, 409 if it failed or
    was cancelled."""
    if status.state == "completed":
        body = {"id": str(status.id), "state": "completed", "result": status.result}
        return ApiResponse(body)
    if status.state in _FINISHED:
        ended = "failed" if status.state == "failed" else "was cancelled"
        raise ApiError(
            409,
            "job_failed" if status.state == "failed" else "job_cancelled",
            f"job {status.id} ({status.name!r}) {ended}: {status.last_error}",
            extra={"job": status_json(status)},
        )
    return ApiResponse({"id": str(status.id), "state": status.state}, status_code=202)


async def get_job_result(ctx: WebContext, request: Request) -> Response:
    """The job's outcome now. A read: nothing about the job changes (to wait for it, and have
    it kept until someone reads the result, POST to the same path with the token)."""
    job_id = _path_id(request)
    if "timeout" in request.query_params:
        raise bad(
            "timeout",
            "GET /jobs/{id}/result does not wait: waiting registers interest in the job (it is "
            "then kept an hour after it ends, and its end is notified), which needs the token: "
            'POST /jobs/{id}/result with the body {"timeout": seconds}',
        )
    pool = await ctx.pools.open()
    return _result(await _status_or_404(pool, job_id))


async def wait_for_job_result(ctx: WebContext, request: Request) -> Response:
    """Waits up to ``timeout`` seconds for the job to end (registering interest in it, so that
    it is kept with its result for an hour after it ends), then answers as GET does."""
    require_token(ctx, request)
    job_id = _path_id(request)
    body = await json_body(request, required=False) or {}
    _check_only(body, frozenset({"timeout"}))
    timeout = _number(body, "timeout", 0.0, MAX_RESULT_TIMEOUT_S)
    pool = await ctx.pools.open()
    for wait in (timeout, 0.0):
        try:
            value = await _wait(ctx, job_id, wait)
        except JobNotFoundError as exc:
            raise ApiError(404, "not_found", str(exc), field="id") from exc
        except (JobFailedError, JobCancelledError) as exc:
            status = await job_status(pool, job_id)
            code = "job_failed" if isinstance(exc, JobFailedError) else "job_cancelled"
            extra = {} if status is None else {"job": status_json(status)}
            raise ApiError(409, code, str(exc), extra=extra) from exc
        except TimeoutError:
            status = await _status_or_404(pool, job_id)
            if status.state not in _FINISHED:
                return ApiResponse({"id": str(job_id), "state": status.state}, status_code=202)
            continue  # it finished just now: read its outcome
        return ApiResponse({"id": str(job_id), "state": "completed", "result": value})
    raise AssertionError("a finished job has an outcome")


async def cancel_job(ctx: WebContext, request: Request) -> Response:
    require_token(ctx, request)
    job_id = _path_id(request)
    body = await json_body(request, required=False) or {}
    _check_only(body, frozenset({"reason"}))
    reason = _text(body, "reason") or "cancelled"
    pool = await ctx.pools.open()
    with field_errors("reason"):
        outcomes = await cancel(pool, [job_id], reason)
    if job_id in outcomes:
        return ApiResponse({"id": str(job_id), "outcome": outcomes[job_id]})
    status = await _status_or_404(pool, job_id)
    raise ApiError(
        409,
        "conflict",
        f"job {job_id} is {status.state}: only unfinished jobs can be cancelled",
        extra={"job": status_json(status)},
    )


async def retry_job(ctx: WebContext, request: Request) -> Response:
    require_token(ctx, request)
    job_id = _path_id(request)
    body = await json_body(request, required=False) or {}
    _check_only(body, frozenset())
    pool = await ctx.pools.open()
    retried = await retry(pool, [job_id])
    status = await _status_or_404(pool, job_id)
    if job_id not in retried:
        raise ApiError(
            409,
            "conflict",
            f"job {job_id} is {status.state}: only failed jobs can be retried",
            extra={"job": status_json(status)},
        )
    return ApiResponse(status_json(status))


async def cancel_many(ctx: WebContext, request: Request) -> Response:
    require_token(ctx, request)
    body = await json_body(request, required=True)
    assert body is not None
    _check_only(body, frozenset({"ids", "reason"}))
    ids = _ids(body, "ids", required=True)
    reason = _text(body, "reason") or "cancelled"
    pool = await ctx.pools.open()
    with field_errors("reason"):
        outcomes = await cancel(pool, ids, reason)
    return ApiResponse({"outcomes": {str(k): v for k, v in outcomes.items()}})


async def retry_many(ctx: WebContext, request: Request) -> Response:
    require_token(ctx, request)
    body = await json_body(request, required=True)
    assert body is not None
    _check_only(body, frozenset({"ids"}))
    ids = _ids(body, "ids", required=True)
    pool = await ctx.pools.open()
    retried = await retry(pool, ids)
    return ApiResponse({"retried": [str(i) for i in retried]})


async def purge_jobs(ctx: WebContext, request: Request) -> Response:
    require_token(ctx, request)
    body = await json_body(request, required=False) or {}
    _check_only(body, frozenset({"failed_older_than_s", "history_older_than_s"}))
    failed = _duration(body, "failed_older_than_s")
    history = _duration(body, "history_older_than_s")
    pool = await ctx.pools.open()
    return ApiResponse(purge_json(await purge(pool, failed_before=failed, history_before=history)))


async def get_counts(ctx: WebContext, request: Request) -> Response:
    pool = await ctx.pools.open()
    counts = await queue_counts(pool, exact=False)
    return ApiResponse(
        {"counts": [count_json(c) for c in counts], "exact": all(c.exact for c in counts)}
    )


async def get_throughput(ctx: WebContext, request: Request) -> Response:
    minutes = _query_int(request, "minutes", 60, 1, MAX_THROUGHPUT_MINUTES)
    channel_name = query_text(request, "channel_name")
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    pool = await ctx.pools.open()
    buckets = await throughput(pool, since, channel_name)
    return ApiResponse({"since": iso(since), "buckets": [bucket_json(b) for b in buckets]})


async def get_blocked_chains(ctx: WebContext, request: Request) -> Response:
    pool = await ctx.pools.open()
    return ApiResponse({"chains": [blocked_chain_json(c) for c in await blocked_chains(pool)]})


def api_routes(ctx: WebContext) -> list[Route]:
    """The API's routes, relative to ``/api``."""

    def route(path: str, **handlers: Handler) -> Route:
        endpoints = {method: _endpoint(ctx, handler) for method, handler in handlers.items()}

        async def dispatch(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await endpoints[method](request)

        return Route(path, dispatch, methods=list(handlers), name=path)

    return [
        route("/openapi.json", GET=get_openapi),
        route("/jobs", GET=get_jobs, POST=spawn_job),
        route("/jobs/{id}", GET=get_job),
        route("/jobs/{id}/details", GET=get_job_details),
        route("/jobs/{id}/result", GET=get_job_result, POST=wait_for_job_result),
        route("/jobs/{id}/cancel", POST=cancel_job),
        route("/jobs/{id}/retry", POST=retry_job),
        route("/cancel", POST=cancel_many),
        route("/retry", POST=retry_many),
        route("/purge", POST=purge_jobs),
        route("/counts", GET=get_counts),
        route("/throughput", GET=get_throughput),
        route("/blocked-chains", GET=get_blocked_chains),
    ]
