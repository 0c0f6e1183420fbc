"""Rows 1-1c: spawning one job at a time (bulk spawning is benchmarks/bulk.py).

1 and 1b (scenario ``spawn``): one spawn inside the caller's transaction (BEGIN, spawn,
   COMMIT) from 4 and from 1 producer processes, each on its own connection:
   ``builder().set_json(...).spawn(conn)`` then ``commit()``, against a raw single-row
   ``INSERT`` + ``commit()`` into the floor loop's table, the same transaction shape.
1c (scenario ``enqueue``): "enqueue one job, nothing else" from one producer, the library's
   documented fastest way (``sqlxmq_system.enqueue_one``: today ``builder().spawn()`` on an
   autocommit connection) against pgqueuer's ``enqueue`` on an autocommit connection (its
   required set-up) and a raw autocommit ``INSERT``.

The same producer processes alternate between the methods in one-second slices, so that all
see the same machine (other load on a small machine comes and goes within seconds).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.process
import queue
import time
from collections.abc import Callable, Sequence
from multiprocessing.synchronize import Barrier
from typing import Any

import psycopg

from ._report import AtLeastPeer, AtLeastRatio, Row
from ._support import BenchmarkError, Settings, fresh_database, median, settle, uuid7
from .systems import load
from .systems.floor_system import INSERT_ONE
from .systems.sqlxmq_system import enqueue_one, noop

__all__ = ["TABLES", "count_rows", "run_enqueue", "run_single"]

WARMUP_SPAWNS = 20

TABLES = {"sqlxmq": "mq_jobs", "floor": "floor_jobs", "pgqueuer": "pgqueuer"}
"""The table each system's jobs land in (to check the counts)."""

# --- one job per transaction ---


Spawner = Callable[[int], None]
"""Spawns job number ``n`` and returns once it is committed."""


def _sqlxmq_in_transaction(dsn: str) -> tuple[Spawner, psycopg.Connection[Any]]:
    conn = psycopg.connect(dsn)

    def spawn(n: int) -> None:
        noop.builder().set_json({"n": n}).spawn(conn)
        conn.commit()

    return spawn, conn


def _raw_in_transaction(dsn: str) -> tuple[Spawner, psycopg.Connection[Any]]:
    conn = psycopg.connect(dsn)

    def insert(n: int) -> None:
        conn.execute(INSERT_ONE, (uuid7(), "noop", json.dumps({"n": n})))
        conn.commit()

    return insert, conn


def _sqlxmq_enqueue(dsn: str) -> tuple[Spawner, psycopg.Connection[Any]]:
    conn = psycopg.connect(dsn, autocommit=True)
    return (lambda n: enqueue_one(conn, {"n": n})), conn


def _raw_autocommit(dsn: str) -> tuple[Spawner, psycopg.Connection[Any]]:
    conn = psycopg.connect(dsn, autocommit=True)

    def insert(n: int) -> None:
        conn.execute(INSERT_ONE, (uuid7(), "noop", json.dumps({"n": n})))

    return insert, conn


def _pgqueuer_enqueue(dsn: str) -> tuple[Spawner, psycopg.Connection[Any]]:
    from pgqueuer.db import SyncPsycopgDriver
    from pgqueuer.queries import SyncQueries

    from .systems.pgqueuer_system import enqueue_one as pgqueuer_enqueue_one

    conn = psycopg.connect(dsn, autocommit=True)  # pgqueuer refuses any other connection
    queries = SyncQueries(SyncPsycopgDriver(conn))
    return (lambda n: pgqueuer_enqueue_one(queries, json.dumps({"n": n}).encode())), conn


METHODS: dict[str, tuple[str, Callable[[str], tuple[Spawner, psycopg.Connection[Any]]]]] = {
    "sqlxmq": ("sqlxmq", _sqlxmq_in_transaction),
    "raw": ("floor", _raw_in_transaction),
    "sqlxmq enqueue": ("sqlxmq", _sqlxmq_enqueue),
    "raw autocommit": ("floor", _raw_autocommit),
    "pgqueuer enqueue": ("pgqueuer", _pgqueuer_enqueue),
}
"""Each way of spawning one job: the system (database) it writes to, and how to open it."""


def _producer(
    dsns: dict[str, str],
    schedule: list[tuple[int, str]],
    seconds: float,
    barrier: Barrier,
    results: Any,
) -> None:
    """One producer process with a connection per method (to its system's database): warms
    each up, then runs the slices of ``schedule`` in order, each starting together with the
    other producers."""
    opened = {
        method: METHODS[method][1](dsns[METHODS[method][0]])
        for method in dict.fromkeys(method for _, method in schedule)
    }
    try:
        for spawn, _ in opened.values():
            for n in range(WARMUP_SPAWNS):
                spawn(-1 - n)
        for round_number, method in schedule:
            spawn = opened[method][0]
            barrier.wait()
            count = 0
            started = time.perf_counter()
            deadline = started + seconds
            while time.perf_counter() < deadline:
                spawn(count)
                count += 1
            results.put((round_number, method, count, time.perf_counter() - started))
    finally:
        for _, conn in opened.values():
            conn.close()


def count_rows(dsn: str, system: str) -> int:
    """How many jobs ``system``'s table holds."""
    table = TABLES[system]
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _collect(
    results: Any, procs: Sequence[multiprocessing.process.BaseProcess], count: int, timeout: float
) -> list[tuple[int, str, int, float]]:
    """``count`` slice reports; fails as soon as a producer dies."""
    reports: list[tuple[int, str, int, float]] = []
    deadline = time.monotonic() + timeout
    while len(reports) < count:
        try:
            reports.append(results.get(timeout=0.5))
        except queue.Empty:
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                raise BenchmarkError(
                    f"producer processes failed (exit codes {failed}); see stderr above"
                ) from None
    return reports


def _measure_single(
    settings: Settings, methods: list[str], producers: int, rounds: int, seconds: float
) -> dict[str, list[float]]:
    """Runs ``producers`` processes through ``methods`` in alternating slices of ``seconds``,
    ``rounds`` times each; returns each method's rate (jobs/s) in every round."""
    systems = list(dict.fromkeys(METHODS[method][0] for method in methods))
    schedule = [
        (r, method) for r in range(rounds) for method in (methods if r % 2 == 0 else methods[::-1])
    ]
    with contextlib.ExitStack() as stack:
        dsns = {
            system: stack.enter_context(fresh_database(settings.server_dsn, f"spawn_{system}"))
            for system in systems
        }
        for system, dsn in dsns.items():
            load(system).prepare(dsn)
            settle(dsn)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(producers)
        results = context.Queue()
        procs = [
            context.Process(
                target=_producer, args=(dsns, schedule, seconds, barrier, results), daemon=True
            )
            for _ in range(producers)
        ]
        for proc in procs:
            proc.start()
        try:
            reports = _collect(
                results, procs, producers * len(schedule), len(schedule) * (seconds + 60)
            )
        finally:
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
        for system, dsn in dsns.items():
            mine = [method for method in methods if METHODS[method][0] == system]
            spawned = sum(count for _, m, count, _ in reports if m in mine)
            if count_rows(dsn, system) != spawned + producers * WARMUP_SPAWNS * len(mine):
                raise BenchmarkError(f"{system}: the rows stored do not match the spawns counted")
    rates: dict[str, list[float]] = {method: [] for method in methods}
    for r, method in schedule:
        slices = [(count, elapsed) for r2, m, count, elapsed in reports if (r2, m) == (r, method)]
        rates[method].append(sum(c for c, _ in slices) / max(e for _, e in slices))
    settings.debug(
        f"{producers} producer(s): "
        + "; ".join(f"{s} " + ", ".join(f"{x:,.0f}" for x in v) for s, v in rates.items())
    )
    return rates


SLICE_SECONDS = 1.0


def _rounds(settings: Settings) -> int:
    return max(2, 2 * settings.repeat - 1)


def run_single(settings: Settings) -> list[Row]:
    """Rows 1 and 1b: one spawn inside the caller's transaction, 4 producers and 1."""
    seconds, rounds = SLICE_SECONDS, _rounds(settings)
    rows = []
    for producers, number in ((4, "1"), (1, "1b")):
        settings.log(
            f"spawn, BEGIN + one job + COMMIT, {producers} producer(s), "
            f"{rounds} x {seconds:.0f} s per method, alternating"
        )
        rates = _measure_single(settings, ["sqlxmq", "raw"], producers, rounds, seconds)
        rows.append(
            Row(
                number=number,
                scenario=f"spawn in the caller's transaction (BEGIN, spawn, COMMIT), "
                f"{producers} producer process" + ("es" if producers > 1 else ""),
                unit="jobs/s",
                sqlxmq=median(rates["sqlxmq"]),
                baseline=median(rates["raw"]),
                target=AtLeastRatio(0.9),
                details={"rounds": rates, "slice_seconds": seconds, "producers": producers},
            )
        )
    rows[0].notes.append(
        f"median of {rounds} slices of {seconds:.0f} s per method, alternating, all producers "
        "together; each producer is a process with one connection per method. Baseline: a "
        "raw single-row INSERT into the floor loop's table (primary key and one partial "
        "index), then commit"
    )
    return rows


def run_enqueue(settings: Settings) -> list[Row]:
    """Row 1c: enqueue one job and nothing else, sqlxmq_py's fastest documented way against
    pgqueuer's ``enqueue`` (and a raw autocommit INSERT)."""
    seconds, rounds = SLICE_SECONDS, _rounds(settings)
    methods = ["sqlxmq enqueue", "raw autocommit", "pgqueuer enqueue"]
    settings.log(
        f"enqueue one job, autocommit, 1 producer, {rounds} x {seconds:.0f} s per method, "
        "alternating"
    )
    rates = _measure_single(settings, methods, 1, rounds, seconds)
    return [
        Row(
            number="1c",
            scenario="enqueue one job, nothing else (autocommit), 1 producer process",
            unit="jobs/s",
            sqlxmq=median(rates["sqlxmq enqueue"]),
            baseline=median(rates["raw autocommit"]),
            peers={"pgqueuer": median(rates["pgqueuer enqueue"])},
            target=AtLeastPeer("pgqueuer"),
            notes=[
                "sqlxmq_py: benchmarks.systems.sqlxmq_system.enqueue_one (builder().set_json()"
                ".spawn() on an autocommit connection); pgqueuer: SyncQueries.enqueue() on an "
                "autocommit connection; baseline: a raw single-row INSERT, autocommit"
            ],
            details={"rounds": rates, "slice_seconds": seconds, "producers": 1},
        )
    ]
