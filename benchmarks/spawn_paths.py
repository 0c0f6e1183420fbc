"""A quick comparison of the spawning paths against raw SQL on the same database (not the full
benchmark: one process, interleaved rounds, the median of each):

- bulk: 50,000 jobs in 1,000-job calls, one commit per call: ``spawn_payloads`` (no builder
  per job), ``spawn_many`` (a builder per job), and a raw ``COPY`` of the same payloads into a
  table shaped like the benchmark's baseline;
- one job, nothing else, on an autocommit connection and on a pool of autocommit
  connections: ``builder().set_json(...).spawn(...)`` against a raw single-row ``INSERT``.

Run: ``python -m benchmarks.spawn_paths --dsn postgresql://localhost/postgres``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from sqlxmq_py import CurrentJob, job, migrate, spawn_many
from sqlxmq_py.spawn import spawn_payloads

BASELINE = """
CREATE TABLE baseline_jobs (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    payload json,
    leased boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


@job(name="bench.noop")
async def noop(current_job: CurrentJob) -> None:
    """Never run: only spawned."""


def _bulk_rounds(conn: psycopg.Connection[Any], total: int, batch: int) -> dict[str, float]:
    def payloads(start: int) -> list[dict[str, int]]:
        return [{"n": n} for n in range(start, start + batch)]

    def raw_copy(start: int) -> None:
        with (
            conn.cursor() as cur,
            cur.copy("COPY baseline_jobs (id, name, payload) FROM STDIN") as c,
        ):
            for p in payloads(start):
                c.write_row((uuid.uuid4(), "noop", json.dumps(p)))

    def by_payloads(start: int) -> None:
        spawn_payloads(conn, noop, payloads(start))

    def by_builders(start: int) -> None:
        spawn_many(conn, [noop.builder().set_json(p) for p in payloads(start)])

    ways: dict[str, Callable[[int], None]] = {
        "raw COPY": raw_copy,
        "spawn_payloads": by_payloads,
        "spawn_many (builders)": by_builders,
    }
    spent = dict.fromkeys(ways, 0.0)
    for start in range(0, total, batch):
        for name, way in ways.items():  # interleaved: every way sees the same machine
            began = time.perf_counter()
            way(start)
            conn.commit()
            spent[name] += time.perf_counter() - began
    return {name: total / seconds for name, seconds in spent.items()}


def _single_rounds(dsn: str, count: int) -> dict[str, float]:
    conn = psycopg.connect(dsn, autocommit=True)
    pool = ConnectionPool(dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True)
    raw = "INSERT INTO baseline_jobs (id, name, payload) VALUES (%s, %s, %s)"
    ways: dict[str, Callable[[int], object]] = {
        "raw INSERT (autocommit)": lambda n: conn.execute(
            raw, (uuid.uuid4(), "noop", json.dumps({"n": n}))
        ),
        "spawn (autocommit connection)": lambda n: noop.builder().set_json({"n": n}).spawn(conn),
        "spawn (autocommit pool)": lambda n: noop.builder().set_json({"n": n}).spawn(pool),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for n in range(count):
        for name, way in ways.items():
            began = time.perf_counter()
            way(n)
            times[name].append(time.perf_counter() - began)
    pool.close()
    conn.close()
    return {name: 1 / statistics.median(spent) for name, spent in times.items()}


def main() -> None:
    """Creates a scratch database, measures, prints jobs per second, drops it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql:///postgres")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--singles", type=int, default=2_000)
    args = parser.parse_args()
    name = f"sqlxmq_spawn_paths_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            dsn = psycopg.conninfo.make_conninfo(args.dsn, dbname=name)
            with psycopg.connect(dsn) as conn:
                migrate(conn)
                conn.execute(BASELINE)
                conn.commit()
                bulk = _bulk_rounds(conn, args.jobs, args.batch)
            single = _single_rounds(dsn, args.singles)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    copy_rate = bulk["raw COPY"]
    print(f"bulk: {args.jobs:,} jobs in {args.batch:,}-job calls, one commit per call")
    for way, rate in bulk.items():
        print(f"  {way:<28} {rate:>9,.0f} jobs/s  {rate / copy_rate:6.0%} of raw COPY")
    insert_rate = single["raw INSERT (autocommit)"]
    print(f"one job, nothing else (median of {args.singles:,})")
    for way, rate in single.items():
        print(f"  {way:<28} {rate:>9,.0f} jobs/s  {rate / insert_rate:6.0%} of raw INSERT")


if __name__ == "__main__":
    main()
