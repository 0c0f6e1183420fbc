"""Which job runs when: ordered chains, fairness between channel groups, exclusive leases across
runners, two-phase commit, and lease plans that stay index scans at scale."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import structlog

from sqlxmq_py import CurrentJob, commit, exists, job, spawn_many

from ..helpers import Runner, count_jobs, job_row, lease_params, wait_until
from ..plans import function_plan


async def test_ordered_jobs_run_one_at_a_time_in_spawn_order(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    order: list[tuple[str, int]] = []
    running: dict[str, int] = {"a": 0, "b": 0}
    overlap: list[str] = []

    @job(ordered=True, channel_name="seq")
    async def step(current_job: CurrentJob) -> None:
        group = current_job.channel_args
        running[group] += 1
        if running[group] > 1:
            overlap.append(group)
        await asyncio.sleep(0.002)
        order.append((group, current_job.json()))
        running[group] -= 1

    builders = [step.builder().set_channel_args(g).set_json(i) for i in range(30) for g in "ab"]
    spawn_many(conn, builders[:40])
    conn.commit()
    for b in builders[40:]:  # the rest in separate transactions, one at a time
        b.spawn(conn)
        conn.commit()
    async with runner([step], concurrency=(8, 16)):
        await wait_until(lambda: count_jobs(db) == 0, timeout=20)
    assert overlap == []
    for group in "ab":
        assert [i for g, i in order if g == group] == list(range(30))


async def test_a_failed_ordered_job_blocks_its_chain_only(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    ran: list[Any] = []

    @job(ordered=True, retries=0)
    async def chained(current_job: CurrentJob) -> None:
        ran.append(current_job.json())
        if current_job.json() == "bad":
            raise RuntimeError("breaks the chain")

    @job
    async def free(current_job: CurrentJob) -> None:
        ran.append("free")

    ids = spawn_many(conn, [chained.builder().set_json(v) for v in ["ok", "bad", "after"]])
    free_id = free.builder().spawn(conn)
    conn.commit()
    async with runner([chained, free]):
        await wait_until(lambda: (job_row(db, ids[1]) or {}).get("state") == "f")
        await wait_until(lambda: not exists(db, free_id))
    assert sorted(ran, key=str) == ["bad", "free", "ok"]
    assert (job_row(db, ids[2]) or {}).get("state") == "b"  # strict order: waits behind "bad"


async def test_fairness_small_group_is_not_starved(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    started: list[str] = []

    @job
    async def work(current_job: CurrentJob) -> None:
        started.append(current_job.channel_args)

    spawn_many(conn, [work.builder().set_channel_args("A") for _ in range(10_000)])
    conn.commit()
    spawn_many(conn, [work.builder().set_channel_args("B") for _ in range(10)])  # spawned after
    conn.commit()
    async with runner([work], concurrency=(10, 20)):
        await wait_until(lambda: started.count("B") == 10, timeout=30)
    first_b_done = max(i for i, g in enumerate(started) if g == "B")
    assert started[: first_b_done + 1].count("A") < 500


async def test_two_runners_never_run_one_job_at_once(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    runs: dict[Any, int] = {}
    active: set[Any] = set()
    clashes: list[Any] = []

    @job
    async def exclusive(current_job: CurrentJob) -> None:
        if current_job.id in active:
            clashes.append(current_job.id)
        active.add(current_job.id)
        runs[current_job.id] = runs.get(current_job.id, 0) + 1
        await asyncio.sleep(0)
        active.discard(current_job.id)

    ids = spawn_many(conn, [exclusive.builder() for _ in range(3000)])
    conn.commit()
    async with runner([exclusive], concurrency=(20, 40)), runner([exclusive], concurrency=(20, 40)):
        await wait_until(lambda: count_jobs(db) == 0, timeout=60)
    assert clashes == []
    assert sorted(runs) == sorted(ids)
    assert set(runs.values()) == {1}


async def test_uncommitted_two_phase_jobs_wait_for_commit(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    ran = asyncio.Event()
    marker_ran = asyncio.Event()

    @job
    async def two_phase(current_job: CurrentJob) -> None:
        ran.set()

    @job
    async def marker(current_job: CurrentJob) -> None:
        marker_ran.set()

    job_id = two_phase.builder().set_commit_interval(60).spawn(conn)
    conn.commit()
    async with runner([two_phase, marker], poll_interval=10):
        marker.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(marker_ran.wait(), 10)  # the runner polled; the job stayed put
        assert not ran.is_set()
        assert (job_row(db, job_id) or {})["state"] == "u"
        commit(conn, [job_id])
        conn.commit()  # commit() wakes the runner: no need to wait for its 10 s poll timer
        await asyncio.wait_for(ran.wait(), 5)


async def test_expired_two_phase_jobs_are_discarded_and_logged(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job
    async def never(current_job: CurrentJob) -> None:
        raise AssertionError("an expired uncommitted job must not run")

    job_id = never.builder().set_commit_interval(0.2).spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner([never]):
            await wait_until(lambda: not exists(db, job_id))
    assert [e["job_id"] for e in logs if e["event"] == "uncommitted_job_discarded"] == [str(job_id)]


def _plan(db: psycopg.Connection[Any], channel_names: list[str] | None, cursor: str | None) -> str:
    return function_plan(
        db,
        "mq_lease",
        lease_params(
            channel_names=channel_names,
            cursor_name=cursor,
            cursor_args="" if cursor is not None else None,
            limit=100,
            durable=False,
        ),
    )


def _walk_plan(
    db: psycopg.Connection[Any], channel_names: list[str] | None, cursor: str | None
) -> str:
    """The plan of the group walk's statement that the lease of ``_plan`` runs: mq_ready_groups
    picks one of four by whether the runner names its channels and has a cursor."""
    statement = (0 if cursor is not None else 1) + (0 if channel_names is None else 2)
    return function_plan(
        db,
        "mq_ready_groups",
        {
            "names": channel_names,
            "cursor_name": cursor,
            "cursor_args": "" if cursor is not None else None,
            "limit": 100,
            "excluded": [],
        },
        query=statement,
    )


def _fill(db: psycopg.Connection[Any], groups: int, jobs: int) -> None:
    db.execute(
        "INSERT INTO mq_payloads (id, name, retry_backoff) "
        "SELECT mq_uuid7(), 'bulk', '1 s' FROM generate_series(1, %s)",
        (jobs,),
    )
    db.execute(
        "INSERT INTO mq_jobs (id, channel_name, channel_args, state, max_attempts) "
        "SELECT id, 'ch' || (row_number() OVER () %% %s), '', 'r', 5 FROM mq_payloads",
        (groups,),
    )
    db.execute("ANALYZE mq_jobs")
    db.execute("ANALYZE mq_payloads")


def _assert_index_only(plan: str) -> None:
    assert '"Node Type": "Seq Scan"' not in plan
    assert "mq_jobs_ready_idx" in plan
    assert '"Actual Rows": 100' in plan  # and it did lease a full batch


def _assert_walk_index_only(plan: str, groups: int) -> None:
    assert '"Node Type": "Seq Scan"' not in plan
    assert "mq_jobs_ready_idx" in plan
    assert json.loads(plan)[0]["Plan"]["Actual Rows"] == groups  # the groups it found


def _assert_lease_and_walk(
    db: psycopg.Connection[Any], names: list[str] | None, cursor: str | None, groups: int
) -> None:
    _assert_index_only(_plan(db, names, cursor))
    _assert_walk_index_only(_walk_plan(db, names, cursor), groups)


async def test_lease_plan_uses_indexes_with_a_million_ready_jobs(
    db: psycopg.Connection[Any],
) -> None:
    _fill(db, groups=1, jobs=1_000_000)
    _assert_lease_and_walk(db, None, None, groups=1)
    _assert_lease_and_walk(db, ["ch0"], None, groups=1)
    _assert_lease_and_walk(db, None, "ch0", groups=1)  # wrapped round to the cursor's group
    _assert_lease_and_walk(db, ["ch0"], "ch0", groups=1)


async def test_lease_plan_uses_indexes_with_ten_thousand_groups(
    db: psycopg.Connection[Any],
) -> None:
    _fill(db, groups=10_000, jobs=200_000)
    names = [f"ch{i}" for i in range(0, 10_000, 50)]
    _assert_lease_and_walk(db, None, None, groups=100)
    _assert_lease_and_walk(db, None, "ch5000", groups=100)  # round-robin from a cursor
    _assert_lease_and_walk(db, names, "ch70", groups=100)
    _assert_lease_and_walk(db, names, None, groups=100)
