"""Issue 9.7: replacing a waiting keyed job with a spawn that has parents (``set_after``) must
keep those parents: the job stands for the new spawn, so it waits for them."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.pull import complete, fetch

from .conftest import Runner, state, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute

_ran: list[Any] = []


@job(channel_name="keyed", retain_for=3600)
async def keyed(current_job: CurrentJob) -> None:
    _ran.append(current_job.json())


@job(channel_name="keyed", retain_for=3600)
async def sentinel(current_job: CurrentJob) -> None:
    """Spawned after the keyed job in its group: once it ran, the runner saw the keyed job."""


@job(channel_name="parents")
async def parent(current_job: CurrentJob) -> None:
    """A parent no runner serves: completed by hand through the pull API."""


async def test_replacing_a_keyed_job_with_parents_makes_it_wait_for_them(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """issue 9.7: a job spawned with key K and no parents, then replaced (same key, mode
    replace) by a spawn with ``set_after([P])``, waits for P: it does not run before P
    completes, and runs (with the new payload) after."""
    _ran.clear()
    keyed.builder().set_job_key("K").set_json({"version": 1}).spawn(conn)
    conn.commit()
    parent_id = parent.builder().spawn(conn)
    conn.commit()
    keyed_id = (
        keyed.builder()
        .set_job_key("K", "replace")
        .set_json({"version": 2})
        .set_after([parent_id])
        .spawn(conn)
    )
    conn.commit()
    assert state(db, keyed_id) == "waiting"
    async with runner(JobRegistry([keyed, sentinel, parent]), channel_names=["keyed"]):
        sentinel_id = sentinel.builder().spawn(conn)
        conn.commit()
        await wait_for_state(db, [sentinel_id], "completed")
        assert _ran == []  # the runner leased past it: it must still be waiting for P
        assert state(db, keyed_id) == "waiting"
        (fetched,) = fetch(db, ["parents"], limit=1)
        assert fetched.id == parent_id
        complete(db, fetched)
        await wait_for_state(db, [keyed_id], "completed")
    assert _ran == [{"version": 2}]
