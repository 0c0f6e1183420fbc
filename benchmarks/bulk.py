"""Rows 2-2c (scenario ``bulk``): spawning many jobs at once.

50,000 no-op jobs (10,000 with ``--quick``) in calls of 1,000, one commit per call, each job
with the payload ``{"n": number}``, timed from the first builder (or id, or payload) created
to the last commit:

- ``spawn_many(conn, [builder, ...])``;
- ``bulk_spawn_typed`` (row 2c), the library's builder-free bulk call, when
  ``benchmarks.systems.sqlxmq_system`` defines it (see that module); until then the row is
  skipped and the table says so;
- raw ``COPY`` and raw ``INSERT ... SELECT FROM unnest(arrays)`` of the same rows into the
  floor loop's table;
- pgqueuer's ``enqueue`` of lists (one statement per call, on the autocommit connection it
  requires).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import psycopg

from sqlxmq_py import spawn_many

from ._report import AtLeastRatio, Row
from ._support import BenchmarkError, Settings, fresh_database, interleaved, median, settle, uuid7
from .spawn import count_rows
from .systems import load, sqlxmq_system
from .systems.floor_system import COPY, INSERT_UNNEST
from .systems.sqlxmq_system import noop

__all__ = ["BULK_CALL", "run"]

BULK_CALL = 1_000
"""Jobs per call (and per commit)."""

Insert = Callable[[psycopg.Connection[Any], range], None]


def _spawn_many(conn: psycopg.Connection[Any], numbers: range) -> None:
    spawn_many(conn, [noop.builder().set_json({"n": n}) for n in numbers])


def _unnest(conn: psycopg.Connection[Any], numbers: range) -> None:
    ids = [uuid7() for _ in numbers]
    payloads = [json.dumps({"n": n}) for n in numbers]
    conn.execute(INSERT_UNNEST, (ids, ["noop"] * len(numbers), payloads))


def _copy(conn: psycopg.Connection[Any], numbers: range) -> None:
    with conn.cursor() as cur, cur.copy(COPY) as copy:
        for n in numbers:
            copy.write_row((uuid7(), "noop", json.dumps({"n": n})))


def _pgqueuer(conn: psycopg.Connection[Any], numbers: range) -> None:
    from pgqueuer.db import SyncPsycopgDriver
    from pgqueuer.queries import SyncQueries

    payloads: list[bytes | None] = [json.dumps({"n": n}).encode() for n in numbers]
    size = len(numbers)
    SyncQueries(SyncPsycopgDriver(conn)).enqueue(["noop"] * size, payloads, [0] * size)


def _typed_hook() -> Insert | None:
    hook: Insert | None = getattr(sqlxmq_system, "bulk_spawn_typed", None)
    return hook


def _methods() -> dict[str, tuple[str, Insert, bool]]:
    """Each method: its system (database), its call, whether it needs autocommit."""
    methods: dict[str, tuple[str, Insert, bool]] = {"spawn_many": ("sqlxmq", _spawn_many, False)}
    typed = _typed_hook()
    if typed is not None:
        methods["bulk_spawn_typed"] = ("sqlxmq", typed, False)
    methods.update(
        {
            "copy": ("floor", _copy, False),
            "unnest": ("floor", _unnest, False),
            "pgqueuer": ("pgqueuer", _pgqueuer, True),
        }
    )
    return methods


def _measure(settings: Settings, method: str, spec: tuple[str, Insert, bool], count: int) -> float:
    system, insert, autocommit = spec
    with fresh_database(settings.server_dsn, f"bulk_{system}") as dsn:
        load(system).prepare(dsn)
        settle(dsn)
        with psycopg.connect(dsn, autocommit=autocommit) as conn:
            # a warm-up call: rolled back, or (autocommit) left in the table and counted
            insert(conn, range(-BULK_CALL, 0))
            conn.rollback()
            warmup = BULK_CALL if autocommit else 0
            started = time.perf_counter()
            for start in range(0, count, BULK_CALL):
                insert(conn, range(start, min(start + BULK_CALL, count)))
                conn.commit()
            elapsed = time.perf_counter() - started
        if count_rows(dsn, system) != count + warmup:
            raise BenchmarkError(f"{method}: expected {count + warmup} rows")
    rate = count / elapsed
    settings.debug(f"bulk {method}: {rate:,.0f} jobs/s")
    return rate


def run(settings: Settings) -> list[Row]:
    """Rows 2 (spawn_many vs COPY), 2b (vs unnest) and 2c (bulk_spawn_typed vs COPY)."""
    count = settings.pick(50_000, 10_000)
    methods = _methods()
    settings.log(f"spawn in bulk, {count:,} jobs in calls of {BULK_CALL:,}: {', '.join(methods)}")
    rates = interleaved(
        settings, list(methods), lambda method: _measure(settings, method, methods[method], count)
    )
    figure = {method: median(runs) for method, runs in rates.items()}
    pgqueuer: dict[str, float | None] = {"pgqueuer": figure["pgqueuer"]}
    rows = [
        Row(
            number="2",
            scenario=f"spawn_many, {count:,} jobs in calls of {BULK_CALL:,} (vs raw COPY)",
            unit="jobs/s",
            sqlxmq=figure["spawn_many"],
            baseline=figure["copy"],
            peers=dict(pgqueuer),
            target=AtLeastRatio(0.6),
            notes=[
                "one commit per call, timed from the first builder (id, payload) created to the "
                "last commit; baseline: COPY of the same rows into the floor loop's table; "
                "pgqueuer: enqueue() of lists, autocommit"
            ],
            details={"runs": rates, "jobs": count, "call": BULK_CALL},
        ),
        Row(
            number="2b",
            scenario="same, vs raw INSERT ... SELECT FROM unnest(arrays)",
            unit="jobs/s",
            sqlxmq=figure["spawn_many"],
            baseline=figure["unnest"],
            peers=dict(pgqueuer),
        ),
    ]
    if "bulk_spawn_typed" in figure:
        rows.append(
            Row(
                number="2c",
                scenario="builder-free bulk_spawn_typed, same jobs (vs raw COPY)",
                unit="jobs/s",
                sqlxmq=figure["bulk_spawn_typed"],
                baseline=figure["copy"],
                peers=dict(pgqueuer),
                target=AtLeastRatio(0.6),
            )
        )
    else:
        note = (
            "row 2c skipped: benchmarks.systems.sqlxmq_system defines no bulk_spawn_typed "
            "(the library has no builder-free bulk call yet)"
        )
        settings.log(note)
        rows[0].notes.append(note)
    return rows
