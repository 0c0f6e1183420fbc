"""Load and scale (slow): 100,000 jobs in 1,000 channel groups drained by four runner processes,
twice. Nothing runs twice, every group is served from the start, the processes' memory stays
flat, and the hot table and its indexes do not grow from one cycle to the next. A second test
measures throughput while another session holds a snapshot open (printed, not asserted)."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from sqlxmq_py import spawn_many

from ..helpers import count_jobs
from ..processes import Child, Processes
from .load_worker import EXECUTIONS, load_job

ROOT = Path(__file__).resolve().parents[2]
GROUPS = 1_000
PER_GROUP = 100
TOTAL = GROUPS * PER_GROUP

Worker = Callable[..., Child]


@pytest.fixture
def load_worker(dsn: str, processes: Processes) -> Worker:
    """Starts ``tests.reliability.load_worker`` processes, each returned once it is ready;
    leftovers are killed at teardown."""

    def start(*args: str) -> Child:
        return processes.python("-m", "tests.reliability.load_worker", dsn, *args, ready="ready")

    return start


def stop_workers(procs: list[Child]) -> None:
    for proc in procs:
        proc.signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=60) == 0
        assert proc.stdout().split()[-1:] == ["stopped"]


def spawn_groups(db: psycopg.Connection[Any]) -> set[uuid.UUID]:
    """Spawns PER_GROUP jobs in each of GROUPS groups, group after group (the order in which a
    FIFO queue would serve them one group at a time), visible at once in one transaction."""
    ids: list[uuid.UUID] = []
    with psycopg.connect(db.info.dsn) as conn:
        for first in range(0, GROUPS, 100):
            builders = [
                load_job.builder().set_channel_args(f"g{g:04d}")
                for g in range(first, first + 100)
                for _ in range(PER_GROUP)
            ]
            ids.extend(spawn_many(conn, builders))
        conn.commit()
    return set(ids)


def executions_of(db: psycopg.Connection[Any], ids: set[uuid.UUID]) -> list[tuple[Any, ...]]:
    """(job_id, group, pid, at) of the executions of these jobs, in time order."""
    rows = db.execute("SELECT job_id, grp, pid, at FROM executions ORDER BY at").fetchall()
    return [row for row in rows if row[0] in ids]


def relation_sizes(db: psycopg.Connection[Any]) -> dict[str, int]:
    """Bytes on disk of mq_jobs, each of its indexes, and mq_payloads."""
    rows = db.execute(
        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class AS c "
        "WHERE c.relname IN ('mq_jobs', 'mq_payloads') "
        "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'mq_jobs'::regclass) "
        "ORDER BY c.relname"
    ).fetchall()
    return dict(rows)


def vacuum_twice(db: psycopg.Connection[Any]) -> None:
    """VACUUM twice, as successive autovacuum runs would: index pages emptied and deleted by the
    first become reusable (recycled into the free space map) by the second.

    Only once no snapshot from before the deletion is left, though, and the horizon moves only
    with transaction ids: a busy database gets there by itself between two autovacuums. Up to
    PostgreSQL 15 the check (BTPageIsRecyclable) uses the horizon of the whole server, so a
    snapshot in any database (an autovacuum ANALYZE elsewhere, say) holds the pages back. So
    the test takes an id itself and waits until every snapshot older than it, in any database,
    is gone.
    """
    db.execute("VACUUM mq_jobs, mq_payloads")
    row = db.execute("SELECT pg_current_xact_id()::xid::text").fetchone()
    assert row is not None
    older = (
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        "AND (age(backend_xmin) >= age(%(xid)s::xid) OR age(backend_xid) >= age(%(xid)s::xid))"
    )
    deadline = time.monotonic() + 30
    while db.execute(older, {"xid": row[0]}).fetchone() != (0,):
        assert time.monotonic() < deadline, "a snapshot from before the VACUUM stays open"
        time.sleep(0.05)
    db.execute("VACUUM mq_jobs, mq_payloads")


def rss_mb(proc: Child) -> float:
    return psutil.Process(proc.pid).memory_info().rss / 2**20


@pytest.mark.slow
@pytest.mark.timeout(900)  # two 100,000-job cycles: more than the default 300 s on a busy machine
def test_hundred_thousand_jobs_in_a_thousand_groups_on_four_processes(
    db: psycopg.Connection[Any], load_worker: Worker
) -> None:
    db.execute(EXECUTIONS)
    procs = [load_worker("--concurrency", "20", "40") for _ in range(4)]
    rss: dict[int, list[list[float]]] = {p.pid: [[], []] for p in procs}
    sizes: list[dict[str, int]] = []
    cycles: list[tuple[set[uuid.UUID], float]] = []
    for cycle in range(2):
        ids = spawn_groups(db)
        started = time.monotonic()
        while count_jobs(db) > 0:
            assert time.monotonic() - started < 300, f"{count_jobs(db)} jobs left after 300 s"
            for proc in procs:
                rss[proc.pid][cycle].append(rss_mb(proc))
            time.sleep(1.0)
        cycles.append((ids, time.monotonic() - started))
        # the workers write what they ran every half second
        deadline = time.monotonic() + 30
        while len(executions_of(db, ids)) < TOTAL and time.monotonic() < deadline:
            time.sleep(0.5)
        vacuum_twice(db)
        sizes.append(relation_sizes(db))
    stop_workers(procs)

    for cycle, (ids, duration) in enumerate(cycles, start=1):
        runs = executions_of(db, ids)
        per_job = Counter(job_id for job_id, _, _, _ in runs)
        assert set(per_job) == ids  # every job ran
        assert max(per_job.values()) == 1  # none ran twice
        # fairness: every group is served in every tenth of the drain (a FIFO, or a queue that
        # served one group after another, would serve each group in one or two tenths only)
        tenths = [
            {grp for _, grp, _, _ in runs[i * TOTAL // 10 : (i + 1) * TOTAL // 10]}
            for i in range(10)
        ]
        served = [len(groups) for groups in tenths]
        print(
            f"cycle {cycle}: {TOTAL} jobs, {GROUPS} groups, {len(procs)} processes, "
            f"{duration:.1f} s, {TOTAL / duration:.0f} jobs/s; groups served per tenth {served}"
        )
        assert min(served[:9]) == GROUPS
        assert Counter(pid for _, _, pid, _ in runs).keys() == {p.pid for p in procs}
    for pid, (first, second) in rss.items():
        print(
            f"RSS of runner {pid}: cycle 1 {min(first):.1f}-{max(first):.1f} MB, "
            f"cycle 2 {min(second):.1f}-{max(second):.1f} MB"
        )
    for cycle, size in enumerate(sizes, start=1):
        print(f"after cycle {cycle} and VACUUM: " + ", ".join(f"{k} {v}" for k, v in size.items()))
    # memory stays flat: the second 100,000 jobs add nothing to what the first left behind
    for pid, (first, second) in rss.items():
        assert max(second) <= max(first) + 8, pid
    # the hot table and its indexes reuse the space the first cycle freed. VACUUM never shrinks
    # an index, so its size is the largest a drain ever needed: that peak varies a little with
    # timing (lease updates add index entries until they are cleaned), but space that is never
    # reused would double it with each cycle
    for relation, size in sizes[1].items():
        assert size <= sizes[0][relation] * 1.25 + 65536, relation


def spawn_batch(db: psycopg.Connection[Any], per_group: int) -> int:
    with psycopg.connect(db.info.dsn) as conn:
        spawn_many(
            conn,
            [
                load_job.builder().set_channel_args(f"g{g:04d}")
                for g in range(GROUPS)
                for _ in range(per_group)
            ],
        )
        conn.commit()
    return GROUPS * per_group


def drain_rate(db: psycopg.Connection[Any], seconds: float, slice_s: float = 10.0) -> list[float]:
    """Keeps the queue topped up for ``seconds`` and returns the jobs/s of each slice."""
    rates: list[float] = []
    spawned = 0
    remaining = count_jobs(db)
    for _ in range(int(seconds / slice_s)):
        start, done = time.monotonic(), 0
        while time.monotonic() - start < slice_s:
            if remaining < 10_000:
                spawned += spawn_batch(db, 20)
                remaining += GROUPS * 20
            time.sleep(0.5)
            now_remaining = count_jobs(db)
            done += remaining - now_remaining
            remaining = now_remaining
        rates.append(done / (time.monotonic() - start))
    return rates


@pytest.mark.slow
def test_queue_keeps_draining_while_a_snapshot_is_held_open(
    dsn: str, db: psycopg.Connection[Any], load_worker: Worker
) -> None:
    db.execute(EXECUTIONS)
    procs = [load_worker("--concurrency", "20", "40") for _ in range(4)]
    spawn_batch(db, 20)
    before = drain_rate(db, 20)
    with psycopg.connect(dsn) as holder:
        holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        holder.execute("SELECT count(*) FROM mq_jobs").fetchone()  # takes the snapshot
        held = drain_rate(db, 60)
        dead = db.execute(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'mq_jobs'"
        ).fetchone()
        holder.rollback()
    after = drain_rate(db, 20)
    while count_jobs(db) > 0:
        time.sleep(0.5)
    stop_workers(procs)
    mean = [sum(r) / len(r) for r in (before, held, after)]
    print(
        f"throughput, 4 processes, 1000 groups: {mean[0]:.0f} jobs/s without a held snapshot; "
        f"{mean[1]:.0f} jobs/s while a REPEATABLE READ snapshot was held for 60 s "
        f"(per 10 s: {', '.join(f'{r:.0f}' for r in held)}; dead rows in mq_jobs at the end: "
        f"{dead[0] if dead else '?'}); {mean[2]:.0f} jobs/s in the 20 s after it was released"
    )
    assert min(before + held + after) > 0  # the queue kept draining throughout
    runs = Counter(job_id for (job_id,) in db.execute("SELECT job_id FROM executions"))
    assert max(runs.values()) == 1  # nothing ran twice
