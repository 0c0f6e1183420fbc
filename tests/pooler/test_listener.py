"""The runner's listener behind PgBouncer: a runner that finds a pooler for sure (by the backend
pid it was handed) does not LISTEN through it (in transaction mode that LISTEN would stay on a
server session and hear nothing) and polls instead; with ``set_listen_dsn`` it hears."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, job
from sqlxmq_py.runner._upkeep import LISTEN_CHECK_TIMEOUT

from ..helpers import running, wait_until
from .conftest import StartPgBouncer, captured_logs, events, server_sessions


def listener_idle(db: psycopg.Connection[Any]) -> bool | None:
    """The runner's announcement (the only runner of the test database): idle or not, None
    if it has none."""
    row = db.execute("SELECT idle FROM mq_listeners").fetchone()
    return None if row is None else bool(row[0])


def make_job(started: dict[int, asyncio.Event]) -> Any:
    @job
    async def signal(current_job: CurrentJob) -> None:
        started[current_job.json()].set()

    return signal


async def test_a_deaf_listener_is_detected_and_jobs_still_start(
    pgbouncer: StartPgBouncer, db: psycopg.Connection[Any]
) -> None:
    bouncer = pgbouncer(pool_size=2)
    started = {i: asyncio.Event() for i in range(6)}
    signal = make_job(started)
    with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as producer:
        db.execute("LISTEN mq")
        heard: list[str] = []
        db.add_notify_handler(lambda n: heard.append(n.payload))
        async with (
            captured_logs() as (logs, signals),
            running(bouncer.dsn, [signal], poll_interval=5.0),
        ):
            await asyncio.wait_for(signals.event("listener_deaf").wait(), 15)
            await wait_until(lambda: listener_idle(db) is False)
            for i in started:
                signal.builder().set_json(i).spawn(producer)
                await asyncio.wait_for(started[i].wait(), 10)
                db.execute("SELECT 1")  # delivers any notification the spawn sent
                assert listener_idle(db) is False
            assert heard == []  # the spawns sent no notification into the void
    (started_event,) = events(logs, "runner_started")
    assert started_event["behind_pooler"] is True
    assert started_event["prepared_statements"] is False
    assert started_event["listening"] is False
    assert len(events(logs, "listener_deaf")) == 1


async def test_a_direct_listen_dsn_hears(
    pgbouncer: StartPgBouncer, dsn: str, db: psycopg.Connection[Any]
) -> None:
    bouncer = pgbouncer(pool_size=2)
    started = {i: asyncio.Event() for i in range(6)}
    signal = make_job(started)
    with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as producer:
        async with (
            captured_logs() as (logs, signals),
            running(bouncer.dsn, [signal], listen_dsn=dsn, poll_interval=30.0),
        ):
            await asyncio.wait_for(signals.event("runner_started").wait(), 10)
            await wait_until(lambda: listener_idle(db) is True)
            for i in started:
                signal.builder().set_json(i).spawn(producer)
                await asyncio.wait_for(started[i].wait(), 10)
            await wait_until(lambda: listener_idle(db) is True)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    signals.event("listener_deaf").wait(), LISTEN_CHECK_TIMEOUT + 1
                )
    (started_event,) = events(logs, "runner_started")
    assert started_event["behind_pooler"] is True
    assert started_event["listening"] is True
    assert events(logs, "listener_deaf") == []


async def test_a_runner_behind_a_transaction_pooler_leaves_no_listen_on_its_sessions(
    pgbouncer: StartPgBouncer,
) -> None:
    """Nothing can UNLISTEN a server session the runner no longer holds: the runner must not
    LISTEN through the pooler at all."""
    bouncer = pgbouncer(pool_size=2)
    started = {0: asyncio.Event()}
    signal = make_job(started)
    with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as producer:
        async with captured_logs() as (_, signals), running(bouncer.dsn, [signal]):
            await asyncio.wait_for(signals.event("listener_deaf").wait(), 15)
            signal.builder().set_json(0).spawn(producer)
            await asyncio.wait_for(started[0].wait(), 15)
    listening = [channel for _, channels in server_sessions(bouncer) for channel in channels]
    assert listening == []
