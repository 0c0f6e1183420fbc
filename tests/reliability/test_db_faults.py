"""Database faults during a drain: a server restart, connections terminated one kind at a time,
and a statement timeout. The runner must reconnect, lose nothing, commit each job's effect once,
and run new jobs promptly once the database is healthy again."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections import Counter
from typing import Any, cast, get_args

import psycopg
import pytest
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sqlxmq_py import CurrentJob, JobRegistry, job, spawn_many
from sqlxmq_py.runner._connection import DedicatedConnection
from sqlxmq_py.sql import QueryName, query

from ..helpers import count_jobs, running, wait_until
from .conftest import PrivateServer

EFFECTS = "CREATE TABLE effects (job_id uuid NOT NULL, attempt int NOT NULL)"
RUNNER_APP = "sqlxmq-reliability-runner"


async def _write_effect(current_job: CurrentJob) -> None:
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO effects (job_id, attempt) VALUES (%s, %s)",
            (current_job.id, current_job.attempt),
        )
        await current_job.complete(conn)


@job(lease=5.0, retries=10, backoff=0.2)
async def effect(current_job: CurrentJob) -> None:
    """Writes its effect and completes in the same transaction: exactly once however often its
    connections break."""
    await asyncio.sleep(0.002)
    await _write_effect(current_job)


@job(lease=1.5, retries=10, backoff=0.2)
async def short_effect(current_job: CurrentJob) -> None:
    """``effect`` with a short lease, so that the runner renews leases several times a second."""
    await asyncio.sleep(0.01)
    await _write_effect(current_job)


@job(lease=1.5, retries=10, backoff=0.2)
async def plain(current_job: CurrentJob) -> None:
    """Returns normally: completed by the runner's completion batches."""
    await asyncio.sleep(0.01)


@job(retries=0)
async def fragile(current_job: CurrentJob) -> None:
    """Has a single attempt and uses a connection of the runner's pool."""
    async with current_job.pool.connection() as conn:
        await conn.execute("SELECT 1")


probe_started: dict[Any, float] = {}


probe_backlog: dict[Any, int] = {}


@job
async def probe(current_job: CurrentJob) -> None:
    """Records when it started, to measure spawn-to-start latency, and how many other jobs were
    still queued then."""
    probe_started[current_job.id] = time.monotonic()
    async with current_job.pool.connection() as c:
        cur = await c.execute("SELECT count(*) FROM mq_jobs WHERE id <> %s", (current_job.id,))
        row = await cur.fetchone()
    assert row is not None
    probe_backlog[current_job.id] = int(row[0])


def effect_counts(db: psycopg.Connection[Any]) -> Counter[Any]:
    return Counter(dict(db.execute("SELECT job_id, count(*) FROM effects GROUP BY job_id")))


def effects_total(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM effects").fetchone()
    assert row is not None
    return int(row[0])


async def spawn_probe(db: psycopg.Connection[Any], group: str) -> tuple[float, int]:
    """Spawns a probe job in its own group; returns how long it took to start (printed, never
    asserted) and how many other jobs were queued when it started."""
    spawned = time.monotonic()
    job_id = probe.builder().set_channel_args(group).spawn(db)
    await wait_until(lambda: job_id in probe_backlog, timeout=30)
    return probe_started[job_id] - spawned, probe_backlog[job_id]


def errors_of(logs: list[dict[str, Any]], event: str, **keys: Any) -> list[str]:
    return [
        str(e.get("error", ""))
        for e in logs
        if e["event"] == event and all(e.get(k) == v for k, v in keys.items())
    ]


# --- (a) the server restarts in the middle of a drain ---


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_server_restart_mid_drain_loses_nothing_and_latency_recovers(
    private_server: PrivateServer, private_dsn: str, mode: str
) -> None:
    total = 1000
    with psycopg.connect(private_dsn, autocommit=True) as db:
        db.execute(EFFECTS)
        ids = spawn_many(db, [effect.builder().set_json(i) for i in range(total)])
    registry = JobRegistry([effect, probe])
    with structlog.testing.capture_logs() as logs:
        async with running(
            private_dsn, registry, concurrency=(8, 16), poll_interval=0.5, stop_timeout=10
        ):
            with psycopg.connect(private_dsn, autocommit=True) as db:
                await wait_until(lambda: effects_total(db) >= total // 4, 30)
            down = time.monotonic()
            private_server.stop(mode)  # "immediate" is a crash: recovery, unlogged tables empty
            # the outage lasts until the runner has noticed it
            await wait_until(lambda: any(e["event"] == "listener_lost" for e in logs), 30)
            private_server.start()
            up = time.monotonic()
            with psycopg.connect(private_dsn, autocommit=True) as db:
                assert 0 < count_jobs(db) < total  # the restart did happen mid-drain
                after_restart, backlog = await spawn_probe(db, "probe-after-restart")
                await wait_until(lambda: count_jobs(db) == 0, timeout=60)
                drained = time.monotonic()
                when_idle, _ = await spawn_probe(db, "probe-idle")
                counts = effect_counts(db)
    assert set(counts) == set(ids)  # every job had its effect
    assert set(counts.values()) == {1}  # exactly once
    events = Counter(e["event"] for e in logs)
    for event in ("connection_lost", "connection_restored", "listener_lost", "listener_restored"):
        assert events[event] >= 1, event
    print(
        f"restart ({mode}): down {up - down:.1f} s, drained {drained - up:.1f} s after, probe "
        f"started {after_restart:.2f} s after spawn (backlog), {when_idle:.2f} s (idle runner)"
    )
    # a new group is served before the backlog is drained (the idle probe, once it is: the
    # wait for it is the check)
    assert backlog > 0


async def test_jobs_after_a_restart_get_live_connections_from_the_runners_pool(
    private_server: PrivateServer, private_dsn: str
) -> None:
    registry = JobRegistry([fragile])
    # maintenance (which also borrows pool connections) is kept out of the way: the jobs are the
    # first to use the pool after the restart
    async with running(
        private_dsn,
        registry,
        concurrency=(8, 16),
        poll_interval=0.5,
        maintenance_interval=3600,
        stop_timeout=5,
    ):
        with psycopg.connect(private_dsn, autocommit=True) as db:
            spawn_many(db, [fragile.builder() for _ in range(40)])  # fills the pool
            await wait_until(lambda: count_jobs(db) == 0, 20)
        private_server.stop("fast")
        private_server.start()
        with psycopg.connect(private_dsn, autocommit=True) as db:
            spawn_many(db, [fragile.builder() for _ in range(40)])
            await wait_until(lambda: count_jobs(db, "state NOT IN ('f')") == 0, 20)
            errors = db.execute(
                "SELECT p.last_error FROM mq_jobs JOIN mq_payloads AS p USING (id)"
            ).fetchall()
    # the runner knows the server restarted (its own connections reconnected); the single
    # attempt of a job must not be spent on a pooled connection that died with the old server
    assert [e.splitlines()[0] for (e,) in errors] == []


# --- (b) connections terminated one kind at a time ---

_ROLE_QUERIES: dict[str, tuple[str, ...]] = {
    "lease": (
        "lease",
        "lease_limited",
        "promote",
        "listener_upsert",
        "listener_delete",
        "migrations_applied",
        "channel_limits",
    ),
    "complete": (
        "complete",
        "fail",
        "keep_alive",
        "checkpoint",
        "release",
        "park",
        "stats_add",
        "completion_check",
    ),
    "renewal": ("renew",),
    "maintenance": ("maintain", "unpark", "ping", "schedules", "schedule_advance"),
}


def _prefix(name: str) -> str:
    """The start of a statement as pg_stat_activity shows it (before any parameter)."""
    return query(cast(QueryName, name)).decode()[:30].split("%")[0]


_ROLE_PREFIXES = {
    role: tuple(_prefix(n) for n in names if n in get_args(QueryName))
    for role, names in _ROLE_QUERIES.items()
}


def connection_role(statement: str) -> str:
    """Which part of the runner a connection belongs to, from the last statement it ran."""
    if statement.startswith("LISTEN"):
        return "listener"
    for role, prefixes in _ROLE_PREFIXES.items():
        if statement.startswith(prefixes):
            return role
    return "pool"  # jobs' own work


def terminate_role(db: psycopg.Connection[Any], role: str) -> int:
    """Terminates the runner's connections of one role; returns how many."""
    rows = db.execute(
        "SELECT pid, query FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = %s",
        (RUNNER_APP,),
    ).fetchall()
    pids = [pid for pid, statement in rows if connection_role(statement) == role]
    for pid in pids:
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(pids)


async def test_terminated_connections_of_every_kind_lose_nothing(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute(EFFECTS)
    roles = ["listener", "lease", "complete", "renewal", "maintenance", "pool"]
    kills: Counter[str] = Counter()
    effect_ids: list[Any] = []

    def spawn_batch() -> None:
        effect_ids.extend(spawn_many(db, [short_effect.builder() for _ in range(500)]))
        spawn_many(db, [plain.builder() for _ in range(500)])

    spawn_batch()
    registry = JobRegistry([short_effect, plain])
    deadline = time.monotonic() + 90
    with structlog.testing.capture_logs() as logs:
        async with running(
            make_conninfo(dsn, application_name=RUNNER_APP),
            registry,
            concurrency=(8, 16),
            poll_interval=0.5,
            stop_timeout=10,
        ):
            await wait_until(lambda: effects_total(db) > 0)
            turn = 0
            while min(kills[r] for r in roles) < 3:
                assert time.monotonic() < deadline, f"kills so far: {dict(kills)}"
                role = roles[turn % len(roles)]
                turn += 1
                kills[role] += min(terminate_role(db, role), 1)
                await asyncio.sleep(0.1)
                if count_jobs(db) < 300:
                    spawn_batch()  # keep the drain going until every kind was hit
            await wait_until(lambda: count_jobs(db) == 0, timeout=60)
    counts = effect_counts(db)
    assert set(counts) == set(effect_ids)
    assert set(counts.values()) == {1}
    print(f"terminations by connection kind: {dict(kills)}")
    assert errors_of(logs, "listener_lost")
    assert errors_of(logs, "connection_lost", role="lease")
    assert errors_of(logs, "connection_lost", role="complete")
    assert errors_of(logs, "lease_renewal_failed")


# --- (c) a statement timeout that breaks the runner's statements for a while ---


def timed_out(logs: list[dict[str, Any]]) -> set[str]:
    """The parts of the runner that logged a statement timeout."""
    parts = {
        ("statement_retried", "complete"): "completion batches",
        ("lease_renewal_failed", None): "lease renewal",
        ("statement_retried", "maintenance"): "maintenance",
    }
    return {
        parts[key]
        for e in logs
        if "statement timeout" in str(e.get("error", ""))
        and (key := (e["event"], e.get("role"))) in parts
    }


async def test_statement_timeout_is_survived_logged_and_the_work_finishes_once_lifted(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute(EFFECTS)
    database = sql.Identifier(db.info.dbname)
    total = 1000
    ids = spawn_many(db, [short_effect.builder() for _ in range(total)])
    # every new session of this database gets a 100 ms statement timeout
    db.execute(sql.SQL("ALTER DATABASE {} SET statement_timeout = '100ms'").format(database))
    registry = JobRegistry([short_effect, probe])
    with structlog.testing.capture_logs() as logs:
        async with running(dsn, registry, concurrency=(8, 16), poll_interval=0.5):
            await wait_until(lambda: effects_total(db) >= 100, 30)
            # a long lock (a migration, say) makes every statement on mq_jobs outlast the timeout
            # (async: the runner shares this event loop and must go on while the lock waits)
            async with await psycopg.AsyncConnection.connect(dsn) as locker:
                await locker.execute("SET statement_timeout = 0")
                await locker.execute("LOCK TABLE mq_jobs IN ACCESS EXCLUSIVE MODE")
                # held until the completion batches, the lease renewal and maintenance have all
                # run into the timeout
                await wait_until(lambda: len(timed_out(logs)) == 3, timeout=20)
                await locker.rollback()
            db.execute(sql.SQL("ALTER DATABASE {} RESET statement_timeout").format(database))
            await wait_until(lambda: count_jobs(db) == 0, timeout=60)
            latency, _ = await spawn_probe(db, "probe-after-timeouts")
    counts = effect_counts(db)
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}
    # the probe started (the wait for it is the check): the runner works normally again
    print(f"statement timeouts logged by: {sorted(timed_out(logs))}; probe: {latency:.2f} s")


async def test_a_runner_connection_shared_by_two_tasks_reconnects_once(dsn: str) -> None:
    # The runner shares its dedicated connections between tasks: the lease connection serves
    # the lease loop and, from the maintenance task, the channel limits and the heartbeat; the
    # completion connection serves the batcher and the stats flush. Once a loss has been
    # noticed (no connection held, as here), every task that needs it reconnects: they must
    # end up on one connection, not open several and drop all but one unclosed.
    shared = DedicatedConnection(
        make_conninfo(dsn, application_name=RUNNER_APP), {}, "lease", lambda: False
    )
    statement = b"SELECT pg_backend_pid()"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            results = await asyncio.gather(shared.execute(statement), shared.execute(statement))
            gc.collect()
    finally:
        await shared.close()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert results[0] == results[1]  # one backend served both
