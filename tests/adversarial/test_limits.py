"""Names and keys at and past their limits (issue 9.8): they are index keys, so a B-tree entry
must fit in a third of a page. At the limit everything works; one byte past it the Python API
refuses the value with a ConfigurationError naming the limit, and a spawn from SQL fails on a
named check constraint, never with PostgreSQL's raw "index row size exceeds" error."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, job, spawn_many
from sqlxmq_py._validate import MAX_KEY_BYTES, MAX_NAME_BYTES

from ..helpers import incompressible
from .conftest import Runner, wait_for_state


async def test_names_channels_args_and_keys_at_their_limits_spawn_and_run(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    long_name = incompressible(MAX_NAME_BYTES, 1)

    @job(name=long_name)
    async def named(current_job: CurrentJob) -> None:
        pass

    channel = incompressible(MAX_NAME_BYTES, 2)
    builders = [
        named.builder()
        .set_channel_name(channel)
        .set_channel_args(incompressible(MAX_NAME_BYTES, 10 + i))
        .set_job_key(incompressible(MAX_KEY_BYTES, 20 + i))
        .set_ordered(i % 2 == 0)
        for i in range(4)
    ]
    ids = spawn_many(conn, builders)
    # the same key again replaces the waiting job (the key index is used)
    again = named.builder().set_channel_name(channel).set_job_key(builders[0].to_write().job_key)
    assert again.spawn(conn) == ids[0]
    conn.commit()
    async with runner(JobRegistry([named]), channel_names=[channel]):
        await wait_for_state(db, ids, "gone")


@pytest.mark.parametrize(
    ("argument", "size", "constraint"),
    [
        ("channel_name", MAX_NAME_BYTES + 1, "mq_jobs_channel_name_length"),
        ("channel_args", MAX_NAME_BYTES + 1, "mq_jobs_channel_args_length"),
        ("job_key", MAX_KEY_BYTES + 1, "mq_jobs_job_key_length"),
        ("channel_name", 10_000, "mq_jobs_channel_name_length"),
    ],
)
def test_a_spawn_from_sql_past_a_limit_fails_on_a_named_constraint(
    db: psycopg.Connection[Any], argument: str, size: int, constraint: str
) -> None:
    value = incompressible(size, 7)
    with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
        db.execute(
            f"SELECT mq_spawn('j', {argument} => %s)",  # the argument name is a literal above
            (value,),
        )
