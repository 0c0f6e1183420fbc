"""Rows 1 and 2: spawning jobs.

1. One job per transaction from N producer processes, each on its own connection:
   ``builder().set_json(...).spawn(conn)`` then ``commit()``, against a plain single-row
   ``INSERT`` + ``commit()`` into the baseline table. The same producer processes alternate
   between the two systems in one-second slices, so that both see the same machine (other
   load on a small machine comes and goes within seconds).
2. ``spawn_many`` in batches of 10,000 (one commit per batch, builders created in the timed
   loop), against a multi-row ``INSERT ... SELECT FROM unnest(arrays)`` and against ``COPY``
   into the baseline table, with the same batches.
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

from sqlxmq_py import spawn_many

from ._report import AtLeast, AtLeastRatio, Row
from ._support import BenchmarkError, Settings, fresh_database, interleaved, median, settle, uuid7
from .systems import load
from .systems.baseline_system import COPY, INSERT_ONE, INSERT_UNNEST
from .systems.sqlxmq_system import noop

__all__ = ["run_bulk", "run_single"]

WARMUP_SPAWNS = 20
BULK_BATCH = 10_000

# --- one job per transaction ---


def _spawn_sqlxmq(conn: psycopg.Connection[Any], n: int) -> None:
    noop.builder().set_json({"n": n}).spawn(conn)
    conn.commit()


def _insert_baseline(conn: psycopg.Connection[Any], n: int) -> None:
    conn.execute(INSERT_ONE, (uuid7(), "noop", json.dumps({"n": n})))
    conn.commit()


SINGLE: dict[str, Callable[[psycopg.Connection[Any], int], None]] = {
    "sqlxmq": _spawn_sqlxmq,
    "baseline": _insert_baseline,
}


def _producer(
    dsns: dict[str, str],
    schedule: list[tuple[int, str]],
    seconds: float,
    barrier: Barrier,
    results: Any,
) -> None:
    """One producer process, connected to every system's database: warms each up, then runs
    the slices of ``schedule`` in order, each starting together with the other producers."""
    conns = {system: psycopg.connect(dsn) for system, dsn in dsns.items()}
    try:
        for system, conn in conns.items():
            for n in range(WARMUP_SPAWNS):
                SINGLE[system](conn, -1 - n)
        for round_number, system in schedule:
            spawn, conn = SINGLE[system], conns[system]
            barrier.wait()
            count = 0
            started = time.perf_counter()
            deadline = started + seconds
            while time.perf_counter() < deadline:
                spawn(conn, count)
                count += 1
            results.put((round_number, system, count, time.perf_counter() - started))
    finally:
        for conn in conns.values():
            conn.close()


def _count_rows(dsn: str, system: str) -> int:
    table = "mq_jobs" if system == "sqlxmq" else "baseline_jobs"
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
    settings: Settings, producers: int, rounds: int, seconds: float
) -> dict[str, list[float]]:
    """Runs ``producers`` processes against both systems in alternating slices of ``seconds``,
    ``rounds`` times each; returns each system's rate (jobs/s) in every round."""
    systems = list(SINGLE)
    schedule = [
        (r, system) for r in range(rounds) for system in (systems if r % 2 == 0 else systems[::-1])
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
            spawned = sum(count for _, s, count, _ in reports if s == system)
            if _count_rows(dsn, system) != spawned + producers * WARMUP_SPAWNS:
                raise BenchmarkError(f"{system}: the rows stored do not match the spawns counted")
    rates: dict[str, list[float]] = {system: [] for system in systems}
    for r, system in schedule:
        slices = [(count, elapsed) for r2, s, count, elapsed in reports if (r2, s) == (r, system)]
        rates[system].append(sum(c for c, _ in slices) / max(e for _, e in slices))
    settings.debug(
        f"{producers} producer(s): "
        + "; ".join(f"{s} " + ", ".join(f"{x:,.0f}" for x in v) for s, v in rates.items())
    )
    return rates


def run_single(settings: Settings) -> list[Row]:
    """Row 1: one job per transaction, 4 producers (and 1 producer, for information)."""
    seconds = 1.0
    rounds = max(2, 2 * settings.repeat - 1)
    rows = []
    for producers, number, target in ((4, "1", AtLeastRatio(0.8)), (1, "1b", None)):
        settings.log(
            f"spawn, one job per transaction, {producers} producer(s), "
            f"{rounds} x {seconds:.0f} s per system, alternating"
        )
        rates = _measure_single(settings, producers, rounds, seconds)
        rows.append(
            Row(
                number=number,
                scenario=f"spawn, 1 job/transaction, {producers} producer process"
                + ("es" if producers > 1 else ""),
                unit="jobs/s",
                sqlxmq=median(rates["sqlxmq"]),
                baseline=median(rates["baseline"]),
                target=target,
                details={"rounds": rates, "slice_seconds": seconds, "producers": producers},
            )
        )
    rows[0].notes.append(
        f"median of {rounds} slices of {seconds:.0f} s per system, alternating sqlxmq_py and "
        "baseline, all producers together; each producer is a process with one connection per "
        "database. Baseline: single-row INSERT into a table with a primary key and one partial "
        "index, then commit"
    )
    return rows


# --- bulk ---


def _bulk_sqlxmq(conn: psycopg.Connection[Any], start: int, size: int) -> None:
    spawn_many(conn, [noop.builder().set_json({"n": n}) for n in range(start, start + size)])


def _bulk_unnest(conn: psycopg.Connection[Any], start: int, size: int) -> None:
    ids = [uuid7() for _ in range(size)]
    payloads = [json.dumps({"n": n}) for n in range(start, start + size)]
    conn.execute(INSERT_UNNEST, (ids, ["noop"] * size, payloads))


def _bulk_copy(conn: psycopg.Connection[Any], start: int, size: int) -> None:
    with conn.cursor() as cur, cur.copy(COPY) as copy:
        for n in range(start, start + size):
            copy.write_row((uuid7(), "noop", json.dumps({"n": n})))


BULK: dict[str, tuple[str, Callable[[psycopg.Connection[Any], int, int], None]]] = {
    "sqlxmq": ("sqlxmq", _bulk_sqlxmq),
    "unnest": ("baseline", _bulk_unnest),
    "copy": ("baseline", _bulk_copy),
}


def _measure_bulk(settings: Settings, method: str, count: int) -> float:
    system, insert = BULK[method]
    with fresh_database(settings.server_dsn, f"bulk_{method}") as dsn:
        load(system).prepare(dsn)
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            insert(conn, -BULK_BATCH, BULK_BATCH)  # warm-up batch, rolled back
            conn.rollback()
            started = time.perf_counter()
            for start in range(0, count, BULK_BATCH):
                insert(conn, start, min(BULK_BATCH, count - start))
                conn.commit()
            elapsed = time.perf_counter() - started
        if _count_rows(dsn, system) != count:
            raise BenchmarkError(f"{method}: expected {count} rows")
    rate = count / elapsed
    settings.debug(f"bulk {method}: {rate:,.0f} jobs/s")
    return rate


def run_bulk(settings: Settings) -> list[Row]:
    """Row 2: spawn_many against unnest and COPY."""
    count = settings.pick(100_000, 30_000)
    settings.log(f"spawn in bulk, {count:,} jobs in batches of {BULK_BATCH:,}")
    rates = interleaved(settings, list(BULK), lambda method: _measure_bulk(settings, method, count))
    sqlxmq = median(rates["sqlxmq"])
    rows = [
        Row(
            number="2",
            scenario=f"spawn_many, {count:,} jobs in batches of {BULK_BATCH:,} (vs unnest INSERT)",
            unit="jobs/s",
            sqlxmq=sqlxmq,
            baseline=median(rates["unnest"]),
            target=AtLeast(100_000),
            details={"runs": rates, "jobs": count},
        ),
        Row(
            number="2b",
            scenario="same, vs COPY",
            unit="jobs/s",
            sqlxmq=sqlxmq,
            baseline=median(rates["copy"]),
        ),
    ]
    rows[0].notes.append(
        "timed from the first builder (or id) created to the last commit; one commit per batch"
    )
    return rows
