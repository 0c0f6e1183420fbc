"""Managing jobs: list_jobs (filters and keyset paging), queue_counts, cancel (waiting,
running, ordered chains), retry, reschedule, blocked_chains and channel limits."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import BlockingCurrentJob, ConfigurationError, CurrentJob, job, spawn_many
from sqlxmq_py.admin import (
    BlockedChain,
    QueueCount,
    blocked_chains,
    cancel,
    channel_limits,
    job_status,
    list_jobs,
    queue_counts,
    reschedule,
    retry,
    set_channel_limit,
)
from sqlxmq_py.pull import complete, fail, fetch

from ..helpers import Runner, count_jobs, job_row, wait_until
from ._util import db_now, history_row, state_of


@job
async def task(current_job: CurrentJob) -> None:
    pass


@job(ordered=True, retries=0)
async def step(current_job: CurrentJob) -> None:
    pass


def _fetch_one(conn: psycopg.Connection[Any], channel: str) -> Any:
    (item,) = fetch(conn, [channel])
    return item


# --- list_jobs ---


def test_list_jobs_pages_newest_first_across_queue_and_history(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ids = [task.builder().set_channel_name("page").set_json(i).spawn(conn) for i in range(7)]
    conn.commit()
    for item in fetch(conn, ["page"], limit=7):
        if item.json() in (1, 4):
            complete(conn, item, retain_for=timedelta(hours=1))
        else:
            fail(conn, item, "later", delay=timedelta(hours=1))
    conn.commit()
    pages: list[list[uuid.UUID]] = []
    before = None
    while True:
        page = list_jobs(db, limit=3, before=before)
        if not page:
            break
        pages.append([s.id for s in page])
        before = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids[::-1]
    states = {s.id: s.state for s in list_jobs(db)}
    assert states == {i: ("completed" if n in (1, 4) else "retrying") for n, i in enumerate(ids)}


def test_list_jobs_filters(conn: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> None:
    @job(channel_name="mail")
    async def send(current_job: CurrentJob) -> None:
        pass

    mail = send.builder().spawn(conn)
    keyed = send.builder().set_job_key("welcome:1").spawn(conn)
    later = task.builder().set_delay(3600).spawn(conn)
    other = task.builder().set_channel_name("mail").spawn(conn)
    conn.commit()
    assert [s.id for s in list_jobs(db, channel_name="mail")] == [other, keyed, mail]
    assert [s.id for s in list_jobs(db, name=send.name)] == [keyed, mail]
    assert [s.id for s in list_jobs(db, job_key="welcome:1")] == [keyed]
    assert [s.id for s in list_jobs(db, states=["scheduled"])] == [later]
    assert [s.id for s in list_jobs(db, states=["ready", "scheduled"], limit=2)] == [
        other,
        later,
    ]
    assert list_jobs(db, states=["completed", "cancelled"]) == []
    cancel(db, [later], "tidy")
    (cancelled,) = list_jobs(db, states=["cancelled"])
    assert (cancelled.id, cancelled.last_error) == (later, "tidy")


async def test_list_jobs_with_an_async_connection(
    aconn: psycopg.AsyncConnection[Any],
) -> None:
    job_id = await task.builder().spawn(aconn)
    (status,) = await list_jobs(aconn)
    assert status.id == job_id
    assert status.state == "ready"
    await aconn.rollback()


def test_list_jobs_states_scheduled_is_not_crowded_out_by_retrying_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """'scheduled' and 'retrying' share a row state; a page of scheduled jobs must still hold
    ``limit`` scheduled jobs when newer retrying jobs exist."""
    scheduled = spawn_many(conn, [task.builder().set_delay(3600) for _ in range(2)])
    spawn_many(conn, [task.builder().set_channel_name("flaky") for _ in range(3)])
    conn.commit()
    for item in fetch(conn, ["flaky"], limit=3):
        assert fail(conn, item, "try later", delay=timedelta(hours=1)) == "retrying"
    conn.commit()
    page = list_jobs(db, states=["scheduled"], limit=2)
    assert [s.id for s in page] == scheduled[::-1]


def test_list_jobs_validates_its_options(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="states"):
        list_jobs(db, states=["done"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="states"):
        list_jobs(db, states="ready")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="limit"):
        list_jobs(db, limit=0)
    with pytest.raises(ConfigurationError, match="before"):
        list_jobs(db, before="x")  # type: ignore[arg-type]


# --- queue_counts ---


def test_queue_counts_per_channel_and_state(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    old = db_now(db) - timedelta(minutes=2)
    task.builder().set_channel_name("q").set_run_at(old).spawn(conn)
    task.builder().set_channel_name("q").spawn(conn)
    task.builder().set_channel_name("q").set_delay(3600).spawn(conn)
    task.builder().set_channel_name("flaky").spawn(conn)
    conn.commit()
    assert fail(conn, _fetch_one(conn, "flaky"), "x", delay=3600) == "retrying"
    task.builder().set_channel_name("busy").spawn(conn)
    conn.commit()
    _fetch_one(conn, "busy")
    conn.commit()
    counts = {(c.channel_name, c.state): c for c in queue_counts(db)}
    assert set(counts) == {
        ("q", "ready"),
        ("q", "scheduled"),
        ("flaky", "retrying"),  # a failed attempt waiting for its backoff is not "scheduled"
        ("busy", "running"),
    }
    ready = counts["q", "ready"]
    assert ready.count == 2
    assert ready.oldest_ready_age_s is not None
    assert 110 < ready.oldest_ready_age_s < 300
    assert counts["q", "scheduled"] == QueueCount(
        channel_name="q", state="scheduled", count=1, oldest_ready_age_s=None
    )
    assert counts["flaky", "retrying"].count == 1
    assert counts["busy", "running"].count == 1


def test_queue_counts_gives_one_row_per_channel_and_state(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A blocked ordered job and a continuation are both 'waiting': one row, counting both."""
    head, _blocked = spawn_many(
        conn, [step.builder().set_channel_name("c"), step.builder().set_channel_name("c")]
    )
    task.builder().set_channel_name("c").set_after([head]).spawn(conn)
    conn.commit()
    waiting = [c for c in queue_counts(db) if c.state == "waiting"]
    assert waiting == [
        QueueCount(channel_name="c", state="waiting", count=2, oldest_ready_age_s=None)
    ]


def test_a_parked_job_counts_as_waiting_exact_or_estimated(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A job waiting for a runner that knows its name is 'waiting' in every count and list
    (one mapping of codes to states, in sqlxmq_py.states), never 'scheduled'."""
    parked = task.builder().set_channel_name("p").spawn(conn)
    conn.commit()
    db.execute("UPDATE mq_jobs SET state = 'n' WHERE id = %s", (parked,))
    db.commit()
    expected = [QueueCount(channel_name="p", state="waiting", count=1, oldest_ready_age_s=None)]
    assert [c for c in queue_counts(db) if c.channel_name == "p"] == expected
    assert [c for c in queue_counts(db, exact=False) if c.channel_name == "p"] == expected
    assert [s.state for s in list_jobs(db, channel_name="p")] == ["waiting"]


# --- cancel ---


def test_cancel_waiting_jobs_and_ignore_unknown_ones(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ready = task.builder().spawn(conn)
    scheduled = task.builder().set_delay(3600).spawn(conn)
    uncommitted = task.builder().set_commit_interval(60).spawn(conn)
    failed = task.builder().set_retries(0).set_channel_name("f").spawn(conn)
    conn.commit()
    assert fail(conn, _fetch_one(conn, "f"), "broken") == "failed"
    conn.commit()
    unknown = uuid.uuid4()
    outcome = cancel(conn, [ready, scheduled, uncommitted, failed, unknown], "cleanup")
    conn.commit()
    assert outcome == {
        ready: "cancelled",
        scheduled: "cancelled",
        uncommitted: "cancelled",
        failed: "cancelled",
    }
    assert count_jobs(db) == 0
    for job_id in (ready, scheduled, failed):
        kept = history_row(db, job_id)
        assert kept is not None
        assert (kept["state"], kept["last_error"]) == ("cancelled", "cleanup")
    assert cancel(conn, [ready]) == {}  # already gone


def test_cancel_is_rolled_back_with_the_callers_transaction(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = task.builder().spawn(conn)
    conn.commit()
    assert cancel(conn, [job_id]) == {job_id: "cancelled"}
    conn.rollback()
    assert state_of(db, job_id) == "r"
    assert history_row(db, job_id) is None


async def test_cancel_a_running_job_that_stops_records_it_cancelled(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    started = threading.Event()
    runs: list[int] = []

    @job(retries=3, lease=0.6, retain_for=timedelta(hours=1))
    def long_running(current_job: BlockingCurrentJob) -> None:
        runs.append(current_job.attempt)
        started.set()
        # the runner hears of the request when it renews the lease (every 0.2 s here); a
        # thread job sees the flag (an async one would be cancelled)
        deadline = time.monotonic() + 10
        while not current_job.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("stopping as asked")

    job_id = long_running.builder().spawn(conn)
    conn.commit()
    async with runner([long_running]):
        assert await asyncio.to_thread(started.wait, 10)
        assert cancel(conn, [job_id], "operator said so") == {job_id: "requested"}
        conn.commit()
        status = job_status(db, job_id)
        assert status is not None
        assert (status.state, status.cancel_requested) == ("running", True)
        await wait_until(lambda: history_row(db, job_id) is not None, timeout=5)
    assert runs == [1]  # not retried
    assert job_row(db, job_id) is None
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "cancelled"
    assert "stopping as asked" in (status.last_error or "")


async def test_cancel_a_running_thread_job_that_returns_completes_it(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """A thread cannot be interrupted: it sees ``current_job.cancelled`` and may finish."""
    started = threading.Event()

    @job(lease=0.6, retain_for=timedelta(hours=1))
    def finishes_anyway(current_job: BlockingCurrentJob) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while not current_job.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)  # a thread job's own loop, polling the flag as documented
        return "finished the batch first"

    job_id = finishes_anyway.builder().spawn(conn)
    conn.commit()
    async with runner([finishes_anyway]):
        assert await asyncio.to_thread(started.wait, 10)
        assert cancel(conn, [job_id]) == {job_id: "requested"}
        conn.commit()
        await wait_until(lambda: history_row(db, job_id) is not None, timeout=5)
    status = job_status(db, job_id)
    assert status is not None
    assert (status.state, status.result) == ("completed", "finished the batch first")


async def test_cancel_a_running_async_job_cancels_its_task(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """An async job is cancelled as a timeout cancels it, even if it never looks at the flag,
    and the attempt is recorded as cancelled (issue 10.6)."""
    started = asyncio.Event()
    stopped: list[str] = []

    @job(lease=0.6)
    async def oblivious(current_job: CurrentJob) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # forever
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise

    job_id = oblivious.builder().spawn(conn)
    conn.commit()
    async with runner([oblivious]):
        await asyncio.wait_for(started.wait(), 10)
        assert cancel(conn, [job_id]) == {job_id: "requested"}
        conn.commit()
        await wait_until(lambda: history_row(db, job_id) is not None, timeout=5)
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "cancelled"
    assert "cancelled while running" in (status.last_error or "")
    assert stopped == ["cancelled"]


async def test_a_running_job_asked_to_cancel_is_not_retried_when_it_fails(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """A job whose cancellation was requested and that then fails (before its runner's next
    lease renewal told it) is cancelled, not retried: the request must not be lost."""
    started = asyncio.Event()
    go = asyncio.Event()
    runs: list[int] = []

    @job(retries=3, backoff=timedelta(hours=1))
    async def doomed(current_job: CurrentJob) -> None:
        runs.append(current_job.attempt)
        started.set()
        await go.wait()
        raise RuntimeError("failed on its own")

    job_id = doomed.builder().spawn(conn)
    conn.commit()
    async with runner([doomed]):  # 30 s leases: renewed every 10 s
        await asyncio.wait_for(started.wait(), 10)
        assert cancel(conn, [job_id]) == {job_id: "requested"}
        conn.commit()
        go.set()
        await wait_until(lambda: state_of(db, job_id) != "l")
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "cancelled"
    assert runs == [1]


async def test_cancelling_the_middle_of_an_ordered_chain_keeps_the_rest_in_order(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    order: list[int] = []
    head_started = asyncio.Event()
    release = asyncio.Event()
    all_done = asyncio.Event()

    @job(ordered=True, channel_name="chain")
    async def link(current_job: CurrentJob) -> None:
        n = current_job.json()
        if n == 0:
            head_started.set()
            await release.wait()
        order.append(n)
        if n == 5:
            all_done.set()

    ids = spawn_many(conn, [link.builder().set_json(n) for n in range(6)])
    conn.commit()
    async with runner([link], concurrency=(4, 8)):
        await asyncio.wait_for(head_started.wait(), 10)
        assert [state_of(db, i) for i in ids] == ["l", "b", "b", "b", "b", "b"]
        assert cancel(conn, [ids[2], ids[4]], "skip these") == {
            ids[2]: "cancelled",
            ids[4]: "cancelled",
        }
        conn.commit()
        assert [state_of(db, i) for i in ids] == ["l", "b", None, "b", None, "b"]
        release.set()
        await asyncio.wait_for(all_done.wait(), 10)
    assert order == [0, 1, 3, 5]
    for cancelled in (ids[2], ids[4]):
        status = job_status(db, cancelled)
        assert status is not None
        assert status.state == "cancelled"


async def test_cancel_with_an_async_connection(aconn: psycopg.AsyncConnection[Any]) -> None:
    job_id = await task.builder().spawn(aconn)
    assert await cancel(aconn, [job_id]) == {job_id: "cancelled"}
    await aconn.commit()


def test_cancel_validates_ids(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="list"):
        cancel(db, uuid.uuid4())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="uuid"):
        cancel(db, ["x"])  # type: ignore[list-item]


# --- retry, reschedule ---


def test_retry_runs_failed_jobs_again_with_fresh_attempts(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    failed = task.builder().set_retries(1).spawn(conn)
    waiting = task.builder().set_delay(3600).spawn(conn)
    conn.commit()
    assert fail(conn, _fetch_one(conn, ""), "one", delay=0) == "retrying"
    conn.commit()
    assert fail(conn, _fetch_one(conn, ""), "two") == "failed"
    conn.commit()
    assert retry(conn, [failed, waiting, uuid.uuid4()]) == [failed]
    conn.commit()
    status = job_status(db, failed)
    assert status is not None
    assert (status.state, status.attempts, status.max_attempts) == ("ready", 0, 2)
    again = _fetch_one(conn, "")
    assert (again.id, again.attempt) == (failed, 1)
    assert fail(conn, again, "three", delay=0) == "retrying"  # a fresh set of attempts
    conn.commit()


async def test_a_retried_job_runs_on_a_runner(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    attempts: list[int] = []
    succeeded = asyncio.Event()
    healthy = False

    @job(retries=0)
    async def flaky(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        if not healthy:
            raise RuntimeError("dependency down")
        succeeded.set()

    job_id = flaky.builder().spawn(conn)
    conn.commit()
    async with runner([flaky]):
        await wait_until(lambda: state_of(db, job_id) == "f")
        healthy = True
        assert retry(conn, [job_id]) == [job_id]
        conn.commit()
        await asyncio.wait_for(succeeded.wait(), 10)
    assert attempts == [1, 1]


def test_reschedule_moves_waiting_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    later = task.builder().set_delay(3600).spawn(conn)
    ready = task.builder().spawn(conn)
    running = task.builder().set_channel_name("busy").spawn(conn)
    conn.commit()
    _fetch_one(conn, "busy")
    conn.commit()
    now = db_now(db)
    assert reschedule(conn, [later, running], run_at=now) == [later]
    conn.commit()
    assert state_of(db, later) == "r"
    assert state_of(db, running) == "l"  # running jobs are left alone
    far = now + timedelta(days=1)
    assert reschedule(conn, [ready], run_at=far, priority=9, retries=7) == [ready]
    conn.commit()
    row = job_row(db, ready)
    assert row is not None
    assert (row["state"], row["attempt_at"], row["priority"], row["max_attempts"]) == (
        "s",
        far,
        9,
        8,
    )
    # only the priority: the run time stays
    assert reschedule(conn, [ready], priority=-1) == [ready]
    conn.commit()
    row = job_row(db, ready)
    assert row is not None
    assert (row["priority"], row["attempt_at"], row["state"]) == (-1, far, "s")


def test_reschedule_changes_the_order_of_ready_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first, second = spawn_many(conn, [task.builder(), task.builder()])
    conn.commit()
    assert reschedule(conn, [second], priority=5) == [second]
    conn.commit()
    assert _fetch_one(conn, "").id == second
    assert _fetch_one(conn, "").id == first


def test_reschedule_validates_its_options(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="run_at"):
        reschedule(db, [uuid.uuid4()], run_at=datetime(2030, 1, 1))
    with pytest.raises(ConfigurationError, match="retries"):
        reschedule(db, [uuid.uuid4()], retries=-1)
    with pytest.raises(ConfigurationError, match="priority"):
        reschedule(db, [uuid.uuid4()], priority=2**31)
    assert reschedule(db, [uuid.uuid4()], run_at=datetime(2030, 1, 1, tzinfo=UTC)) == []


# --- blocked ordered chains ---


def _break_head(conn: psycopg.Connection[Any], channel: str, args: str) -> list[uuid.UUID]:
    ids = spawn_many(
        conn,
        [step.builder().set_channel_name(channel).set_channel_args(args).set_json(i)
         for i in range(3)],
    )  # fmt: skip
    conn.commit()
    head = _fetch_one(conn, channel)
    assert head.id == ids[0]
    assert fail(conn, head, "head broke") == "failed"
    conn.commit()
    return ids


def test_blocked_chains_lists_failed_heads_and_retry_unblocks(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    assert blocked_chains(db) == []
    ids = _break_head(conn, "ord", "tenant-1")
    assert fetch(conn, ["ord"]) == []  # the chain waits behind its failed head
    conn.rollback()
    assert blocked_chains(db) == [
        BlockedChain(
            channel_name="ord",
            channel_args="tenant-1",
            head_id=ids[0],
            head_name=step.name,
            error="head broke",
            waiting=2,
        )
    ]
    assert retry(conn, [ids[0]]) == [ids[0]]
    conn.commit()
    assert blocked_chains(db) == []
    for expected in ids:
        item = _fetch_one(conn, "ord")
        assert item.id == expected
        complete(conn, item)
        conn.commit()
    assert count_jobs(db) == 0


def test_cancelling_a_failed_head_unblocks_its_chain(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ids = _break_head(conn, "ord", "tenant-2")
    (chain,) = blocked_chains(db)
    assert chain.head_id == ids[0]
    assert cancel(conn, [chain.head_id]) == {ids[0]: "cancelled"}
    conn.commit()
    assert blocked_chains(db) == []
    assert state_of(db, ids[1]) == "r"
    assert state_of(db, ids[2]) == "b"


# --- channel limits (bookkeeping; enforcement is in test_channel_limits.py) ---


async def test_set_and_remove_channel_limits(
    db: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    assert channel_limits(db) == {}
    set_channel_limit(db, "emails", 5)
    set_channel_limit(db, "reports", 0)
    set_channel_limit(db, "emails", 3)
    assert channel_limits(db) == {"emails": 3, "reports": 0}
    set_channel_limit(db, "reports", None)
    assert channel_limits(db) == {"emails": 3}
    await set_channel_limit(aconn, "sms", 1)
    assert await channel_limits(aconn) == {"emails": 3, "sms": 1}
    await aconn.rollback()
    assert channel_limits(db) == {"emails": 3}
    with pytest.raises(ConfigurationError, match="max_running"):
        set_channel_limit(db, "emails", -1)
    with pytest.raises(ConfigurationError, match="channel_name"):
        set_channel_limit(db, 5, 1)  # type: ignore[arg-type]
