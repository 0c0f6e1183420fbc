"""Leases are bounded by payload bytes (issue 9.17): a runner holds at most its budget of
payload bytes (``set_max_payload_bytes``), plus one job's, whatever its concurrency; 24 payloads
of 40 MB once made a runner 2 GB resident."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, job, spawn_many
from sqlxmq_py.sql import query

from ..helpers import lease_params
from .conftest import Runner, wait_for_state

MB = 1_000_000


def test_one_lease_stops_at_its_byte_budget(conn: psycopg.Connection[Any]) -> None:
    @job
    async def big(current_job: CurrentJob) -> None:
        pass

    spawn_many(conn, [big.builder().set_raw_bytes(bytes(MB)) for _ in range(24)])
    conn.commit()
    rows = conn.execute(query("lease"), lease_params(limit=24, max_bytes=5 * MB)).fetchall()
    # jobs are taken while those before hold less than the budget: the fifth brings it to 5 MB
    assert len(rows) == 5
    assert sum(row[14] for row in rows) == 5 * MB
    conn.rollback()
    # a job larger than the whole budget is still taken, alone
    rows = conn.execute(query("lease"), lease_params(limit=24, max_bytes=MB // 2)).fetchall()
    assert len(rows) == 1


async def test_a_runner_holds_at_most_its_payload_budget_whatever_its_concurrency(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    running = 0
    most = 0
    started = asyncio.Event()
    release = asyncio.Queue[None]()

    @job
    async def holds(current_job: CurrentJob) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        started.set()
        await release.get()
        running -= 1

    ids = spawn_many(conn, [holds.builder().set_raw_bytes(bytes(MB)) for _ in range(10)])
    conn.commit()
    registry = JobRegistry([holds])
    options = {"concurrency": (16, 32), "max_payload_bytes": 3 * MB}
    async with runner(registry, **options):
        await asyncio.wait_for(started.wait(), 10)
        for _ in ids:
            release.put_nowait(None)  # one job may end; the runner leases one more at most
        await wait_for_state(db, ids, "gone", timeout=30)
    assert most == 3  # 3 MB of payload at once, though 16 slots were free
