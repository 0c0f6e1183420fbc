"""How the kit's drain leases one job: as a runner leases (paused channels left alone, channel
limits and rate limits honoured), or, with ``rate_limits=False``, as if no rate rule existed.

A job whose rate keys are spent is deferred by the lease itself (made scheduled until its keys
allow it, migration 0011), as under a runner; the drain does not run it, and reports it as a
``Deferred`` in ``Drained.deferred`` (and in a log line) rather than leaving the test to
wonder why it did not run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .._connections import Rows, fetch_async, fetch_sync
from ..runner._leasing import channel_caps
from ..runner.options import DEFAULT_LEASE
from ..sql import query
from ._adapters import Database

__all__ = ["Deferred", "lease_one"]

Run = Callable[[bytes, Mapping[str, object] | None], Awaitable[Rows]]

_HIDE_RULES = b"""
WITH hidden AS (DELETE FROM mq_rate_limits RETURNING key_pattern, max_starts, period)
SELECT set_config('sqlxmq.hidden_rate_limits',
    coalesce((SELECT json_agg(h)::text FROM hidden AS h), '[]'), true)
"""
"""Removes the rate rules for the rest of the lease's transaction, keeping them aside: a lease
that finds no rule for a key neither defers its jobs nor counts their starts."""

_RESTORE_RULES = b"""
INSERT INTO mq_rate_limits (key_pattern, max_starts, period)
SELECT r.key_pattern, r.max_starts, r.period
FROM json_populate_recordset(
    NULL::mq_rate_limits, current_setting('sqlxmq.hidden_rate_limits')::json
) AS r
"""
"""Puts the rules back before the lease's transaction ends: nobody else ever sees them gone."""

_DEFERRED = b"""
SELECT j.id, p.name, j.rate_keys, j.attempt_at FROM mq_jobs AS j
JOIN mq_payloads AS p ON p.id = j.id
WHERE j.id = ANY(%(ids)s::uuid[])
"""


@dataclass(frozen=True, kw_only=True)
class Deferred:
    """A job the drain did not run because its rate keys were spent: the lease made it
    scheduled until ``until``, as it would under a runner."""

    id: uuid.UUID
    name: str
    rate_keys: tuple[str, ...]
    until: datetime


@contextlib.asynccontextmanager
async def _together(db: Database) -> AsyncIterator[Run]:
    """Statements run on one connection in one transaction (a savepoint in the test's)."""
    target: Any = db.target
    if isinstance(target, ConnectionPool):
        with target.connection() as conn, conn.transaction():

            async def run_pooled(statement: bytes, params: Mapping[str, object] | None) -> Rows:
                return fetch_sync(conn, statement, params)

            yield run_pooled
    elif isinstance(target, psycopg.Connection):
        with target.transaction():
            yield db.execute
    elif isinstance(target, AsyncConnectionPool):
        async with target.connection() as aconn, aconn.transaction():

            async def run_apooled(statement: bytes, params: Mapping[str, object] | None) -> Rows:
                return await fetch_async(aconn, statement, params)

            yield run_apooled
    else:
        async with target.transaction():
            yield db.execute


async def lease_one(
    db: Database,
    channels: list[str] | None,
    cursor: tuple[str | None, str | None],
    *,
    rate_limits: bool,
    deferred: list[Deferred],
) -> Rows:
    """One due job leased (or none), after any number of jobs deferred for their rate keys
    (appended to ``deferred``); with ``rate_limits=False`` none is deferred, and the starts
    are not counted in the keys' windows."""
    while True:
        if rate_limits:
            rows = await _lease(db.execute, channels, cursor)
        else:
            async with _together(db) as run:
                await run(_HIDE_RULES, None)
                rows = await _lease(run, channels, cursor)
                await run(_RESTORE_RULES, None)
        leased = [r for r in rows if r[1] is not None]
        waiting = [r[0] for r in rows if r[1] is None]
        if waiting:
            found = await db.execute(_DEFERRED, {"ids": waiting})
            by_id = {r[0]: r for r in found}
            deferred.extend(
                Deferred(id=i, name=r[1], rate_keys=tuple(r[2] or ()), until=r[3])
                for i in waiting
                if (r := by_id.get(i)) is not None
            )
        if leased or not waiting:
            return leased  # a lease that deferred every job it took may have left others


async def _lease(
    run: Run, channels: list[str] | None, cursor: tuple[str | None, str | None]
) -> Rows:
    """As a runner leases one job: none from a paused channel (or one limited to 0), and one
    from a channel with a limit only while fewer than its limit run (mq_lease_limited counts
    the jobs runners are running there). Pauses and limits are read for each job, so that one
    a job sets (or an earlier job lifted) holds at once. Deferred jobs come back without a
    lease token."""
    caps = channel_caps(await run(query("channel_limits"), None), channels)
    rows = await run(query("runner_lease"), _lease_params(channels, cursor, sorted(caps)))
    for channel in sorted(c for c, cap in caps.items() if cap > 0):
        if rows:
            break
        rows = await run(
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
