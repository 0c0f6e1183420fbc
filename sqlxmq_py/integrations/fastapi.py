"""FastAPI (and Starlette) integration.

:func:`sqlxmq_lifespan` opens an async connection pool for the app and, given a registry, runs a
job runner on it for the app's lifetime (stopped gracefully at shutdown). Request handlers
spawn jobs in the request's own transaction with the :data:`Transaction` dependency: the job is
committed with the handler's writes, before the response is sent, and dropped with them when
the handler raises::

    app = FastAPI(lifespan=sqlxmq_lifespan(registry))

    @app.post("/signup")
    async def signup(email: str, conn: Transaction) -> dict[str, str]:
        await conn.execute("INSERT INTO users (email) VALUES (%s)", (email,))
        await send_welcome.builder().set_json(email).spawn(conn)
        return {"status": "ok"}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

try:
    from fastapi import Depends, Request
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError("sqlxmq_py.integrations.fastapi needs FastAPI: pip install fastapi") from exc

import psycopg
from psycopg_pool import AsyncConnectionPool

from .._pooler import prepare_unless_pooled
from ..embedded import resolve_dsn
from ..registry import JobRegistry
from ..runner import JobRunnerHandle, JobRunnerOptions

__all__ = [
    "POOL_STATE",
    "RUNNER_STATE",
    "Pool",
    "Transaction",
    "get_pool",
    "get_runner",
    "sqlxmq_lifespan",
    "transaction",
]

POOL_STATE = "sqlxmq_pool"
"""The lifespan state key (``request.state.sqlxmq_pool``) of the app's connection pool."""
RUNNER_STATE = "sqlxmq_runner"
"""The lifespan state key (``request.state.sqlxmq_runner``) of the runner's handle, or None."""

Lifespan = Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]


def sqlxmq_lifespan(
    registry: JobRegistry | None = None,
    dsn: str | None = None,
    *,
    min_size: int = 1,
    max_size: int = 10,
    configure: Callable[[JobRunnerOptions], object] | None = None,
    shutdown_timeout: float | None = 30.0,
) -> Lifespan:
    """A lifespan for ``FastAPI(lifespan=...)`` (or Starlette): opens a connection pool and,
    if ``registry`` is given, runs a job runner on it while the app runs.

    Args:
        registry: the jobs to run in this process; None to only spawn (workers run elsewhere,
            e.g. ``sqlxmq worker``).
        dsn: the database (default: ``$SQLXMQ_DSN``, ``$DATABASE_URL``, else the embedded
            server).
        min_size, max_size: the pool's size; requests and the runner share it.
        configure: called with the runner's options before it starts, e.g.
            ``lambda o: o.set_concurrency(4, 8).set_hooks(PrometheusHooks())``.
        shutdown_timeout: at shutdown, how long running jobs may take to finish before they
            are cancelled and handed back.

    The lifespan state holds the pool (``request.state.sqlxmq_pool``) and the runner's handle
    (``request.state.sqlxmq_runner``). To combine it with a lifespan of your own, enter it in
    yours: ``async with sqlxmq_lifespan(registry)(app) as state: yield state``.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            resolve_dsn(dsn),
            min_size=min_size,
            max_size=max_size,
            open=False,
            name="sqlxmq-app",
            configure=prepare_unless_pooled,  # behind PgBouncer, prepare nothing
        )
        await pool.open(wait=True)
        try:
            handle: JobRunnerHandle | None = None
            if registry is not None:
                options = registry.runner(pool)
                if configure is not None:
                    configure(options)
                handle = await options.run()
            try:
                yield {POOL_STATE: pool, RUNNER_STATE: handle}
            finally:
                if handle is not None:
                    await handle.stop(timeout=shutdown_timeout)
        finally:
            await pool.close()

    return lifespan


def get_pool(request: Request) -> AsyncConnectionPool[Any]:
    """The app's pool (a dependency).

    Raises:
        RuntimeError: the app was not created with :func:`sqlxmq_lifespan`.
    """
    pool = getattr(request.state, POOL_STATE, None)
    if not isinstance(pool, AsyncConnectionPool):
        raise RuntimeError(
            "no sqlxmq_py connection pool: create the app with "
            "FastAPI(lifespan=sqlxmq_lifespan(...))"
        )
    return pool


def get_runner(request: Request) -> JobRunnerHandle | None:
    """The runner started by :func:`sqlxmq_lifespan`, if it was given a registry."""
    handle = getattr(request.state, RUNNER_STATE, None)
    return handle if isinstance(handle, JobRunnerHandle) else None


async def transaction(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection inside a transaction for the request (a dependency): committed when the
    handler returns, rolled back when it raises (an ``HTTPException`` too). Use it through
    :data:`Transaction`, which commits before the response is sent."""
    async with get_pool(request).connection() as conn, conn.transaction():
        yield conn


def _function_scoped(dependency: Callable[..., Any]) -> Any:
    try:  # FastAPI >= 0.121: end the dependency before the response is sent
        return Depends(dependency, scope="function")
    except TypeError:  # FastAPI < 0.121 has no scope; from 0.106 on it ends them before, too
        return Depends(dependency)


Transaction = Annotated[psycopg.AsyncConnection[Any], _function_scoped(transaction)]
"""A handler parameter annotated ``conn: Transaction`` gets the request's transaction."""

Pool = Annotated[AsyncConnectionPool[Any], Depends(get_pool)]
"""A handler parameter annotated ``pool: Pool`` gets the app's pool."""
