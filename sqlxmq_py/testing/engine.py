"""Running jobs inside a test: :func:`drain` (async) and :func:`run_pending` (sync) run every
job that is due, in process and one at a time, until none is.

They lease, complete, fail and park jobs with the runner's own statements (``mq_lease``,
``mq_complete``, ``mq_fail``, ``mq_park``), and each attempt goes through the runner's own
attempt code (``sqlxmq_py.runner._attempts.Attempts``): the kit only swaps the runner's
outcome batcher for a writer that executes each outcome at once on the caller's connection. So
a job's failure is recorded and retried with its backoff, a payload that does not validate
fails the attempt with a ``PayloadError`` naming the field, a job whose name the registry does
not know is parked, and a continuation released by its parent's completion runs in the same
drain, exactly as under a runner.

On an ``AsyncConnection`` everything happens on that connection, in its transaction: jobs
spawned in the test's uncommitted transaction run, a job's ``current_job.pool`` lends that
same connection inside a savepoint, and the test's rollback removes every trace. On an
``AsyncConnectionPool`` each statement commits on its own, as a runner's do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .._connections import Rows
from .._logging import logger
from ..current_job import LeasedJob
from ..errors import ConfigurationError
from ..hooks import JobOutcome, RunnerHooks
from ..registry import JobRegistry
from ..runner._attempts import Attempts
from ..runner._hookset import HookSet
from ..runner._leasing import channel_caps
from ..runner._maintenance import AttemptStats
from ..runner._processes import DEFAULT_PROCESS_LIMITS
from ..runner.options import DEFAULT_CANCEL_GRACE, DEFAULT_LEASE
from ..sql import query
from ._adapters import (
    Capture,
    CapturingRegistry,
    Database,
    Host,
    Outcomes,
    Writer,
    stored_result,
)

if TYPE_CHECKING:
    from ..runner._batcher import Batcher

__all__ = ["Ran", "drain", "run_pending"]

Retries = Literal["wait", "now"]

_MAKE_DUE = b"""
SELECT count(*) FROM mq_reschedule(ARRAY(
    SELECT j.id FROM mq_jobs AS j
    WHERE j.state = 's' AND j.attempt_at > now()
      AND CASE WHEN j.attempts > 0 THEN %(retries)s::boolean ELSE %(scheduled)s::boolean END
      AND (%(channel_names)s::text[] IS NULL OR j.channel_name = ANY(%(channel_names)s::text[]))
      AND EXISTS (SELECT 1 FROM mq_payloads AS p
                  WHERE p.id = j.id AND p.name = ANY(%(names)s::text[]))
    ORDER BY j.attempt_at
), now(), NULL, NULL)
"""
"""Moves the drain's retries waiting for their backoff (and, if asked, its jobs scheduled for
later) to now, through the admin function ``mq_reschedule`` (``sqlxmq_py.reschedule``)."""


@dataclass(frozen=True, kw_only=True)
class Ran:
    """One attempt run by :func:`drain` or :func:`run_pending`."""

    id: uuid.UUID
    name: str
    attempt: int
    """1 for a job's first attempt."""
    outcome: JobOutcome
    """As a runner settles it: ``completed``, ``retrying``, ``failed`` (no attempts left),
    ``cancelled``, ``parked`` (a name the registry does not know), ``abandoned``
    (``auto_complete=False`` and it returned without completing), ``lease_lost``."""
    error: str | None
    """The error recorded on the job (type, message, traceback), or the reason it was parked."""
    result: Any
    """A completed attempt's result, encoded and decoded with the job's declared result type
    (a ``Sent``, not a dict): what it passed to ``complete(result=...)`` without a connection,
    else what it returned (``complete(conn, result=...)`` stores its ``result`` in the job's
    own transaction, out of the drain's sight). ``None`` when it has none, or when it cannot be
    encoded (a runner drops it)."""
    retry_in: timedelta | None
    """For a retried attempt: the backoff the runner scheduled it after."""
    exception: BaseException | None
    """What the job raised (with its traceback), if it raised: kept in memory only."""

    @property
    def succeeded(self) -> bool:
        """Whether the attempt completed the job."""
        return self.outcome == "completed"


async def _drain(
    db: Database,
    registry: JobRegistry,
    *,
    channel_names: Sequence[str] | None,
    retries: Retries,
    with_scheduled: bool,
    limit: int,
    raise_errors: bool,
    hooks: Sequence[RunnerHooks],
) -> list[Ran]:
    if isinstance(channel_names, str):
        raise ConfigurationError("channel_names must be a list of names, not one str")
    if retries not in ("wait", "now"):
        raise ConfigurationError(f"retries must be 'wait' or 'now', got {retries!r}")
    if not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"limit must be a positive int, got {limit!r}")
    registry.check()  # as a runner does before it starts: a job that could never run is refused
    names = sorted(registry.names)
    channels = None if channel_names is None else list(channel_names)
    capture, outcomes = Capture(), Outcomes()
    host = Host(db, registry)
    writer = Writer(db, registry.retain_for)
    log = logger.bind(runner_id="sqlxmq-testing")
    attempts = Attempts(
        registry=cast(JobRegistry, CapturingRegistry(registry, capture)),
        batcher=cast("Batcher", writer),
        host=host,
        hooks=HookSet((outcomes, *hooks), log),
        stats=AttemptStats(),
        cancel_grace=DEFAULT_CANCEL_GRACE,
        max_threads=1,
        processes=DEFAULT_PROCESS_LIMITS,
        log=log,
        on_free=lambda _channel: None,
    )
    host.attempts = attempts
    await db.execute(query("unpark"), {"names": names})  # as a runner's maintenance does
    cursor: tuple[str | None, str | None] = (None, None)
    ran: list[Ran] = []
    try:
        while True:
            if retries == "now" or with_scheduled:
                due = {"retries": retries == "now", "scheduled": with_scheduled}
                await db.execute(_MAKE_DUE, {**due, "channel_names": channels, "names": names})
            await db.execute(query("promote"), {"channel_names": channels, "exclusive": False})
            rows = await _lease_one(db, channels, cursor)
            if not rows:
                return ran
            row = rows[0]
            if len(ran) >= limit:
                await db.execute(
                    query("release"),
                    {"ids": [row[0]], "tokens": [row[1]], "by": None, "started": False},
                )
                raise AssertionError(
                    f"drain ran {limit} attempts and jobs are still due (a job that spawns "
                    f"itself, or retries without end?); the last ones: "
                    f"{[(r.name, r.outcome) for r in ran[-5:]]}; raise limit= if expected"
                )
            cursor = (row[4], row[5])
            capture.reset()
            outcomes.last = None
            attempt = attempts.start(row)
            # the attempt code settles, then may still call the error handler: wait for all of it
            task = attempt.task
            if task is not None:
                await task
            await attempts.all_settled.wait()
            if writer.failure is not None:
                failure, writer.failure = writer.failure, None
                raise failure
            one = _ran(row, outcomes.last, writer, capture, registry)
            ran.append(one)
            if raise_errors and one.exception is not None:
                raise one.exception
    finally:
        attempts.shutdown()


async def _lease_one(
    db: Database, channels: list[str] | None, cursor: tuple[str | None, str | None]
) -> Rows:
    """One due job, leased as a runner leases: none from a paused channel (or one limited to
    0), and one from a channel with a limit only while fewer than its limit run
    (mq_lease_limited counts the jobs runners are running there). Pauses and limits are read
    for each job, so that one a job sets (or an earlier job lifted) holds at once."""
    caps = channel_caps(await db.execute(query("channel_limits")), channels)
    rows = await db.execute(query("lease"), _lease_params(channels, cursor, sorted(caps)))
    for channel in sorted(c for c, cap in caps.items() if cap > 0):
        if rows:
            break
        rows = await db.execute(
            query("lease_limited"),
            {
                "channel_name": channel,
                "cursor_name": None,
                "cursor_args": None,
                "limit": 1,
                "default_lease": DEFAULT_LEASE,
                "durable": True,
                "max_bytes": 2**62,
                "runner": None,
            },
        )
    return rows


def _lease_params(
    channels: list[str] | None, cursor: tuple[str | None, str | None], excluded: list[str]
) -> dict[str, object]:
    return {
        "channel_names": channels,
        "cursor_name": cursor[0],
        "cursor_args": cursor[1],
        "limit": 1,
        "default_lease": DEFAULT_LEASE,
        "excluded": excluded,
        # True: the lease never sets synchronous_commit for the rest of the caller's transaction
        "durable": True,
        "max_bytes": 2**62,
        "runner": None,  # the test's own code, not a runner: listed by no worker
    }


def _ran(
    row: tuple[Any, ...],
    outcome: JobOutcome | None,
    writer: Writer,
    capture: Capture,
    registry: JobRegistry,
) -> Ran:
    token = row[1]
    outcome = outcome or "lease_lost"
    named = registry.get(row[7])
    job = LeasedJob(
        id=row[0], token=token, name=row[7], attempt=row[2], max_attempts=row[3],
        channel_name=row[4], channel_args=row[5], lease=row[6], retry_backoff=row[10],
        payload_json=None, payload_bytes=None,
        result_codec=None if named is None else named.result_codec,
    )  # fmt: skip
    result = None
    if outcome == "completed":
        via_writer = token in writer.results
        result = stored_result(job, writer.results.get(token), capture.returned, via_writer)
    return Ran(
        id=row[0],
        name=row[7],
        attempt=row[2],
        outcome=outcome,
        error=writer.errors.get(token),
        result=result,
        retry_in=writer.delays.get(token) if outcome == "retrying" else None,
        exception=capture.raised,
    )


async def drain(
    conn: psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any],
    registry: JobRegistry,
    *,
    channel_names: Sequence[str] | None = None,
    retries: Retries = "wait",
    with_scheduled: bool = False,
    limit: int = 1000,
    raise_errors: bool = False,
    hooks: Sequence[RunnerHooks] = (),
) -> list[Ran]:
    """Runs every job that is due now, one at a time, until none is due; jobs spawned or
    released meanwhile (continuations, jobs spawned by jobs) run too.

    Each attempt goes through the runner's own code and statements (see the module). On an
    ``AsyncConnection`` it all happens in that connection's transaction (never committed):
    jobs see the test's uncommitted rows, ``current_job.pool`` lends that connection inside a
    savepoint, and a rollback removes every trace; "now" is then the transaction's start, as
    for every ``now()`` in it. On an ``AsyncConnectionPool`` each statement commits, as a
    runner's do. Paused channels are left alone (until resumed), and a channel with a limit
    runs a job only while fewer than its limit are running, as under a runner. Cron schedules
    are not ticked, leases are not renewed, and a thread job that
    opens its own connection sees only committed rows (and would wait for rows the drain's
    transaction holds).

    Args:
        conn: the connection (usually the test's, inside its transaction) or a pool.
        registry: the jobs that may run, their context values and error handler; jobs of other
            names are parked, as a runner parks them.
        channel_names: run only these channels (``None``: all).
        retries: ``"wait"`` (default): a failed attempt's retry waits for its backoff, as under
            a runner, so it does not run in this drain unless its time has come; ``"now"``:
            retries run at once, until the job completes or fails for good.
        with_scheduled: also run the registry's jobs scheduled for later (``set_delay``,
            ``set_run_at``), now.
        limit: the most attempts to run; more is an error (a job that spawns itself forever).
        raise_errors: raise what a job raised as soon as its attempt is recorded, instead of
            going on (the failure is recorded on the job all the same).
        hooks: runner hooks told of each attempt, as a runner's.

    Returns:
        The attempts run, in order.

    Raises:
        ConfigurationError: an option is invalid, or a registered job could never run (a
            context value is missing).
        AssertionError: more than ``limit`` attempts were due.
        BaseException: with ``raise_errors``, what a job raised; also any error of the
            connection itself (an aborted transaction), which a runner would retry.
    """
    if not isinstance(conn, psycopg.AsyncConnection | AsyncConnectionPool):
        raise ConfigurationError(
            "drain() takes an AsyncConnection or AsyncConnectionPool (run_pending() takes a "
            f"sync Connection), got {type(conn).__name__}"
        )
    return await _drain(
        Database(conn),
        registry,
        channel_names=channel_names,
        retries=retries,
        with_scheduled=with_scheduled,
        limit=limit,
        raise_errors=raise_errors,
        hooks=hooks,
    )


def run_pending(
    conn: psycopg.Connection[Any] | ConnectionPool[Any],
    registry: JobRegistry,
    *,
    channel_names: Sequence[str] | None = None,
    retries: Retries = "wait",
    with_scheduled: bool = False,
    limit: int = 1000,
    raise_errors: bool = False,
    hooks: Sequence[RunnerHooks] = (),
) -> list[Ran]:
    """:func:`drain` for sync code: runs the due jobs on a sync connection (in its
    transaction) or pool, on an event loop of its own, and returns when none is due.

    Jobs run exactly as under :func:`drain`, with one limit: there is no async connection in
    the caller's transaction to lend, so an ``async def`` job that reads ``current_job.pool``
    fails its attempt saying so (drain those with :func:`drain`). Plain ``def`` jobs may use
    the same connection (``current_job.complete(conn)`` included): they run in a thread while
    the drain waits for them.

    Args:
        conn: a sync ``psycopg.Connection`` (usually in the test's transaction) or a pool.
        registry: see :func:`drain`; as are the other options.
        channel_names: see :func:`drain`.
        retries: see :func:`drain`.
        with_scheduled: see :func:`drain`.
        limit: see :func:`drain`.
        raise_errors: see :func:`drain`.
        hooks: see :func:`drain`.

    Returns:
        The attempts run, in order.

    Raises:
        RuntimeError: called while an event loop runs in this thread (use :func:`drain`).
        ConfigurationError, AssertionError: as :func:`drain`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_pending() blocks, and an event loop is running here: `await drain(aconn, "
            "registry)` instead"
        )
    if not isinstance(conn, psycopg.Connection | ConnectionPool):
        raise ConfigurationError(
            "run_pending() takes a sync Connection or ConnectionPool (drain() takes an async "
            f"one), got {type(conn).__name__}"
        )
    return asyncio.run(
        _drain(
            Database(conn),
            registry,
            channel_names=channel_names,
            retries=retries,
            with_scheduled=with_scheduled,
            limit=limit,
            raise_errors=raise_errors,
            hooks=hooks,
        )
    )
