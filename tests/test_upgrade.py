"""Upgrading a live database: jobs spawned under schema version 1, in every state it knows
(ready, delayed, leased by a runner that is still alive, leased by one that died, ordered and
blocked, uncommitted, failed), all survive ``migrate()`` to the current version, and a current
runner finishes them: none lost, none run twice, chains still in order."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, MigrationError, admin, job, migrate
from sqlxmq_py.migrate import load_migrations

from .helpers import wait_until

FIRST = "0001_initial.sql"
PARTITIONED = "0013_history_partitions.sql"


def _v1_spawn(c: psycopg.Connection[Any], name: str, **args: Any) -> uuid.UUID:
    """Spawns through version 1's own SQL function, as a v1 client would have."""
    names = ", ".join(f"{k} => %({k})s" for k in args)
    sep = ", " if names else ""
    row = c.execute(f"SELECT mq_spawn(%(name)s{sep}{names})", {"name": name, **args}).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


async def test_jobs_spawned_under_version_1_all_finish_after_upgrade(empty_dsn: str) -> None:
    assert next(m.name for m in load_migrations()) == FIRST
    with psycopg.connect(empty_dsn, autocommit=True) as c:
        assert migrate(c, target=FIRST) == [FIRST]
        for i in range(20):
            _v1_spawn(c, "up_plain", payload_json=f'"p{i}"')
        delayed = _v1_spawn(c, "up_plain", payload_json='"delayed"', delay="300 milliseconds")
        chain = [
            _v1_spawn(
                c,
                "up_ordered",
                payload_json=str(i),
                channel_name="ord",
                channel_args="a",
                ordered=True,
            )
            for i in range(5)
        ]
        # A runner of the old version leased two jobs: one is still within its lease (its
        # runner may yet finish it), the other's runner died (lease already expired).
        live = _v1_spawn(c, "up_plain", payload_json='"live lease"')
        dead = _v1_spawn(c, "up_plain", payload_json='"dead lease"')
        c.execute(
            "UPDATE mq_jobs SET state = 'l', lease_token = gen_random_uuid(), attempts = 1,"
            " attempt_at = now() + CASE WHEN id = %s THEN interval '1 second'"
            " ELSE interval '-1 second' END WHERE id = ANY(%s)",
            (live, [live, dead]),
        )
        two_phase = uuid.uuid4()
        c.execute(
            "SELECT mq_insert(ARRAY[%s::uuid], ARRAY['up_plain'], ARRAY[''], ARRAY[''],"
            " ARRAY['\"two-phase\"'], ARRAY[NULL::bytea], ARRAY[interval '0'], ARRAY[1],"
            " ARRAY[interval '1 second'], ARRAY[NULL::interval], ARRAY[false],"
            " ARRAY[interval '1 hour'], ARRAY[0])",
            (two_phase,),
        )
        failed = _v1_spawn(c, "up_plain", payload_json='"failed"', retries=0)
        c.execute("UPDATE mq_jobs SET state = 'f', attempts = 1 WHERE id = %s", (failed,))
        c.execute("UPDATE mq_payloads SET last_error = 'boom' WHERE id = %s", (failed,))
        states = dict(c.execute("SELECT id, state FROM mq_jobs").fetchall())
        assert {states[i] for i in chain[1:]} == {"b"}
        assert states[chain[0]] == "r"
        assert states[two_phase] == "u"
        assert states[delayed] == "s"

        applied = migrate(c)
        assert applied == [m.name for m in load_migrations()][1:]
        c.execute("SELECT mq_commit(%s)", ([two_phase],))

    seen: list[str] = []
    order: list[int] = []

    @job(name="up_plain")
    async def up_plain(current_job: CurrentJob) -> None:
        seen.append(current_job.json())

    @job(name="up_ordered", channel_name="ord", ordered=True)
    async def up_ordered(current_job: CurrentJob) -> None:
        order.append(current_job.json())

    expected = {f"p{i}" for i in range(20)} | {"delayed", "live lease", "dead lease", "two-phase"}
    handle = await (
        JobRegistry([up_plain, up_ordered])
        .runner(empty_dsn)
        .set_concurrency(2, 8)
        .set_poll_interval(0.2)
        .set_maintenance_interval(0.1)
        .run()
    )
    try:
        await wait_until(lambda: set(seen) == expected and len(order) == 5, timeout=30)
    finally:
        await handle.stop(timeout=5)
    assert sorted(seen) == sorted(expected)  # each exactly once
    assert order == list(range(5))

    async with await psycopg.AsyncConnection.connect(empty_dsn, autocommit=True) as ac:
        left = await (await ac.execute("SELECT id, state FROM mq_jobs")).fetchall()
        assert left == [(failed, "f")]
        status = await admin.job_status(ac, failed)
        assert status is not None
        assert status.last_error == "boom"
        assert await admin.retry(ac, [failed]) == [failed]


@pytest.mark.parametrize("target", ["0001", "9999_missing.sql"])
def test_migrate_to_an_unknown_target_is_refused(empty_dsn: str, target: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as c:
        with pytest.raises(MigrationError, match="no migration named"):
            migrate(c, target=target)
        assert c.execute("SELECT to_regclass('mq_jobs')").fetchone() == (None,)


async def test_history_kept_before_partitioning_survives_the_upgrade(empty_dsn: str) -> None:
    names = [m.name for m in load_migrations()]
    before = names[names.index(PARTITIONED) - 1]
    role = f"sqlxmq_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(empty_dsn, autocommit=True) as c:
        migrate(c, target=before)
        # kept jobs that expire today, in three days, in ten years, and one already expired
        ids = [uuid.uuid4() for _ in range(4)]
        c.execute(
            "INSERT INTO mq_history (id, name, channel_name, channel_args, state, attempts,"
            " max_attempts, priority, created_at, expires_at, result)"
            " SELECT i, 'kept', 'up', '', 'completed', 1, 1, 0, now(), now() + e, r::json"
            " FROM unnest(%s::uuid[], %s::interval[], %s::text[]) AS t(i, e, r)",
            (
                ids,
                ["1 second", "3 days", "3650 days", "-3 days"],
                ['"today"', '"later"', '"far"', '"gone"'],
            ),
        )
        c.execute(f"CREATE ROLE {role} NOLOGIN")
        try:
            c.execute("SELECT mq_grant_usage(%s)", (role,))
            assert migrate(c) == names[names.index(before) + 1 :]
            kept = dict(c.execute("SELECT id, result::text FROM mq_history").fetchall())
            assert kept == dict(zip(ids, ['"today"', '"later"', '"far"', '"gone"'], strict=True))
            holders = c.execute(
                "SELECT count(DISTINCT tableoid) FROM mq_history WHERE tableoid <> "
                "'mq_history_default'::regclass"
            ).fetchone()
            assert holders == (4,)  # each day its partition, none left in the default
            assert c.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'mq_history'::regclass"
            ).fetchone() == ("p",)
            # the rights granted on the old table hold on the new one
            assert c.execute(
                "SELECT has_table_privilege(%s, 'mq_history', 'SELECT, INSERT, DELETE')", (role,)
            ).fetchone() == (True,)
            for job_id in ids[:3]:
                status = admin.job_status(c, job_id)
                assert status is not None
                assert status.state == "completed"
            # the day already past goes with the next upkeep
            c.execute("SELECT mq_history_rotate()")
            assert admin.job_status(c, ids[3]) is None
            assert admin.job_status(c, ids[2]) is not None
        finally:
            c.execute(f"DROP OWNED BY {role}")
            c.execute(f"DROP ROLE {role}")
