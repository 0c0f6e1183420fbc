"""An API operation declared once: its method and path, the models of its input and answers,
whether it needs the token. From the declaration come the route (which checks the token and
reads the input into the models before the handler runs) and the operation's entry in the
OpenAPI document (``openapi.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ConfigurationError, PayloadError, SchemaError
from .context import WebContext
from .http import (
    ApiError,
    bad,
    database_error,
    path_id,
    read_body,
    read_query,
    require_token,
    validate,
)

__all__ = ["Input", "Operation", "routes_of"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class Input:
    """A request's input, read and validated as its operation declares."""

    request: Request
    job_id: uuid.UUID | None = None
    body: BaseModel | None = None
    query: BaseModel | None = None
    path: BaseModel | None = None
    """The path's parameters other than ``{id}``, as the operation declares them."""

    def id(self) -> uuid.UUID:
        """The id of the path (a job's, or a workflow's on the workflow paths)."""
        assert self.job_id is not None, "the operation's path has no {id}"
        return self.job_id

    def body_as(self, model: type[M]) -> M:
        """The body, as the model the operation declares."""
        assert isinstance(self.body, model), f"the operation's body is not a {model.__name__}"
        return self.body

    def query_as(self, model: type[M]) -> M:
        """The query parameters, as the model the operation declares."""
        assert isinstance(self.query, model), f"the operation's query is not a {model.__name__}"
        return self.query

    def path_as(self, model: type[M]) -> M:
        """The path's other parameters, as the model the operation declares."""
        assert isinstance(self.path, model), f"the operation's path is not a {model.__name__}"
        return self.path


Handler = Callable[[WebContext, Input], Awaitable[Response]]


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One method on one path of the API."""

    method: str
    path: str
    """Relative to ``/api``, as the OpenAPI document names it; ``{id}`` is a job id (or what
    ``id_description`` says)."""
    operation_id: str
    tag: str
    """The group it is listed under (``TAGS`` in ``routes.py``)."""
    summary: str
    handler: Handler
    description: str | None = None
    changes: bool = False
    """Needs the bearer token (everything that changes the queue, or registers interest)."""
    body: type[BaseModel] | None = None
    body_required: bool = False
    query: type[BaseModel] | None = None
    responses: Mapping[int, tuple[type[BaseModel], str]] = field(default_factory=dict)
    """The answers besides errors: status -> (model, meaning)."""
    errors: Sequence[int] = ()
    """The error statuses it may answer (each an ``Error``); 401 and 403 come with ``changes``,
    400 with any input, 503 always."""
    location: bool = False
    """The 201 answer's ``Location`` header names the new job."""
    id_description: str = "A job id."
    """What the path's ``{id}`` is."""
    path_params: type[BaseModel] | None = None
    """The model of the path's parameters other than ``{id}`` (each a str field)."""
    route: str | None = None
    """The Starlette path, where it differs from ``path``: ``{name:sqlxmq_text}`` for a
    parameter that may hold any character, ``/`` and newlines included (a rate key pattern, a
    step name), sent percent-encoded."""
    meanings: Mapping[int, str] = field(default_factory=dict)
    """What an error status means here, where it differs from the document's default."""

    @property
    def has_id(self) -> bool:
        """Whether the path holds a job id."""
        return "{id}" in self.path

    def error_statuses(self) -> list[int]:
        """Every error status the operation may answer."""
        statuses = set(self.errors) | {503}
        if self.changes:
            statuses |= {401, 403}
        if self.body is not None:
            statuses |= {400, 413, 415}
        if self.query is not None or self.has_id or self.path_params is not None:
            statuses.add(400)
        return sorted(statuses)

    async def read(self, ctx: WebContext, request: Request) -> Input:
        """The request's input, after the token check: a 4xx for anything not as declared."""
        if self.changes:
            require_token(ctx, request)
        return Input(
            request=request,
            job_id=path_id(request) if self.has_id else None,
            body=None
            if self.body is None
            else await read_body(request, self.body, required=self.body_required),
            query=None if self.query is None else read_query(request, self.query),
            path=None
            if self.path_params is None
            else validate(
                self.path_params,
                {k: v for k, v in request.path_params.items() if k != "id"},
            ),
        )

    async def __call__(self, ctx: WebContext, request: Request) -> Response:
        """Runs the handler on the request, answering errors as ``Error`` objects."""
        try:
            return await self.handler(ctx, await self.read(ctx, request))
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


def routes_of(ctx: WebContext, operations: Sequence[Operation]) -> list[Route]:
    """One Starlette route per path (HEAD answered as GET), relative to ``/api``."""
    by_path: dict[str, dict[str, Operation]] = {}
    for operation in operations:
        by_path.setdefault(operation.route or operation.path, {})[operation.method] = operation

    def route(path: str, methods: dict[str, Operation]) -> Route:
        async def dispatch(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await methods[method](ctx, request)

        return Route(path, dispatch, methods=list(methods), name=path)

    return [route(path, methods) for path, methods in by_path.items()]
