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

from .._logging import logger
from ..current_job import LeasedJob
from ..errors import ConfigurationError
from ..hooks import JobOutcome, RunnerHooks
from ..rate_limit import rule_params
from ..registry import JobRegistry
from ..runner._attempts import Attempts
from ..runner._hookset import HookSet
from ..runner._maintenance import AttemptStats
from ..runner._processes import DEFAULT_PROCESS_LIMITS
from ..runner.options import DEFAULT_CANCEL_GRACE
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
from ._lease import Deferred, lease_one

if TYPE_CHECKING:
    from ..runner._batcher import Batcher

__all__ = ["Deferred", "Drained", "Ran", "drain", "run_pending"]

Retries = Literal["wait", "now"]

_MAKE_DUE = b"""
SELECT count(*) FROM mq_reschedule(ARRAY(
    SELECT j.id FROM mq_jobs AS j
    WHERE j.state = 's' AND j.attempt_at > now()
      AND CASE WHEN j.attempts > 0 THEN %(retries)s::boolean ELSE %(scheduled)s::boolean END
      AND j.id <> ALL(%(deferred)s::uuid[])
      AND (%(channel_names)s::text[] IS NULL OR j.channel_name = ANY(%(channel_names)s::text[]))
      AND EXISTS (SELECT 1 FROM mq_payloads AS p
                  WHERE p.id = j.id AND p.name = ANY(%(names)s::text[]))
    ORDER BY j.attempt_at
), now(), NULL, NULL)
"""
"""Moves the drain's retries waiting for their backoff (and, if asked, its jobs scheduled for
later) to now, through the admin function ``mq_reschedule`` (``sqlxmq_py.reschedule``); not
those it saw deferred for their rate keys (each would be deferred again, without end)."""


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


class Drained(list[Ran]):
    """What :func:`drain` and :func:`run_pending` return: the attempts run, in order (a list
    of :class:`Ran`, compared and used as one), and :attr:`deferred`."""

    deferred: list[Deferred]
    """The jobs not run because their rate keys were spent (each made scheduled until its
    ``until``, as under a runner), in the order the drain met them; empty with
    ``rate_limits=False``."""

    def __init__(self) -> None:
        """No attempts and no deferrals yet."""
        super().__init__()
        self.deferred = []


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
    rate_limits: bool,
) -> Drained:
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
    if rate_limits:
        await _write_rules(db, registry)
    cursor: tuple[str | None, str | None] = (None, None)
    ran = Drained()
    try:
        while True:
            if retries == "now" or with_scheduled:
                due = {"retries": retries == "now", "scheduled": with_scheduled}
                seen = [d.id for d in ran.deferred]
                params = {**due, "channel_names": channels, "names": names, "deferred": seen}
                await db.execute(_MAKE_DUE, params)
            await db.execute(query("promote"), {"channel_names": channels, "exclusive": False})
            before = len(ran.deferred)
            rows = await lease_one(
                db, channels, cursor, rate_limits=rate_limits, deferred=ran.deferred
            )
            for d in ran.deferred[before:]:
                log.info(
                    "drain_deferred_for_rate_keys", job_id=str(d.id), job_name=d.name,
                    rate_keys=list(d.rate_keys), until=d.until.isoformat(),
                )  # fmt: skip
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


async def _write_rules(db: Database, registry: JobRegistry) -> None:
    """The registry's rate rules (``add_rate_limit``), written as a runner writes them at
    start."""
    rules = registry.rate_limits
    if not rules:
        return
    for rule in rules:
        await db.execute(query("rate_limit_set"), rule_params(rule))


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
    rate_limits: bool = True,
) -> Drained:
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
        rate_limits: ``True`` (default): rate limits hold as under a runner (the registry's
            ``add_rate_limit`` rules are written first, as a runner writes them at start): a
            job whose keys are spent is not run but deferred, listed in the result's
            ``deferred`` with its ``until``, and logged (``drain_deferred_for_rate_keys``);
            ``with_scheduled`` and ``retries="now"`` do not bring it back in this drain.
            ``False``: jobs run whatever their keys, and their starts are not counted.

    Returns:
        The attempts run, in order, as a list (a :class:`Drained`, whose ``deferred`` lists
        the jobs left for their rate keys).

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
        rate_limits=rate_limits,
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
    rate_limits: bool = True,
) -> Drained:
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
        rate_limits: see :func:`drain`.

    Returns:
        The attempts run, in order (a :class:`Drained`: see :func:`drain`).

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
            rate_limits=rate_limits,
        )
    )
