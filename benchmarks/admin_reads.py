"""Admin reads on a big queue: ``python -m benchmarks.admin_reads [--jobs 1000000]``.

Fills a fresh database with ``--jobs`` queued jobs (one ``INSERT ... SELECT generate_series``
per table, not timed) in every state, over 20 channels and ten job names, with a tenth of them
keyed, plus kept history (a tenth as many rows), then times what the dashboard and the admin API
read: ``list_jobs`` (the first page, a deep keyset page, every filter alone and a few together),
the overview's counts, blocked chains and throughput, and the dashboard's pages and JSON
endpoints through the app in process (httpx's ASGI transport, no network).

Every figure is the median of ``--repeat`` timed runs after one untimed run (warm caches), in
milliseconds. Nothing here is a test: the figures depend on the machine (see README.md).

The same script runs against older versions of sqlxmq_py (it uses what the installed version
offers), which is how the figures before a change are taken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sqlxmq_py import admin, migrate

from ._support import DEFAULT_SERVER_DSN, describe_machine, fresh_database, machine_info, settle

__all__ = ["fill", "main"]

CHANNELS = 20
NAMES = 10
RARE = 10
"""Jobs in the channel ``rare`` and of the name ``rare_job``."""
DAY_MS = 86_400_000
FILL_SQL = """
WITH params AS (
    SELECT %(n)s::bigint AS n,
           (extract(epoch FROM now()) * 1000)::bigint - %(span_ms)s::bigint AS base_ms
), rows AS (
    SELECT i, p.n, i %% 1000 AS slot,
        p.base_ms + i * %(span_ms)s::bigint / p.n AS ms,
        CASE WHEN i - p.n / 2 - 500 BETWEEN 0 AND %(rare)s - 1 THEN 'rare'
            ELSE 'ch' || lpad((i %% %(channels)s)::text, 2, '0') END AS channel_name,
        CASE WHEN i - p.n / 3 - 500 BETWEEN 0 AND %(rare)s - 1 THEN 'rare_job'
            ELSE 'job_' || (i %% %(names)s) END AS name
    FROM params AS p, generate_series(0, p.n - 1) AS i
), ids AS (
    SELECT r.*,
        (lpad(to_hex(r.ms), 12, '0') || '7' || lpad(to_hex(r.i & 4095), 3, '0') || '8'
         || substr(md5(%(salt)s || r.i::text), 1, 15))::uuid AS id,
        to_timestamp(r.ms / 1000.0) AS at
    FROM rows AS r
)
INSERT INTO {table} ({columns})
SELECT {values} FROM ids
"""
# states by slot (i % 1000): 1% failed, 5% scheduled, 1% retrying, 0.2% waiting, 0.1%
# uncommitted, the rest ready; the oldest 0.2% are running (runners lease the oldest first)
RUNNING = "i < n / 500"
STATE_SQL = f"""CASE
    WHEN {RUNNING} THEN 'l' WHEN slot < 10 THEN 'f' WHEN slot < 70 THEN 's'
    WHEN slot BETWEEN 72 AND 73 THEN 'w' WHEN slot = 74 THEN 'u' ELSE 'r' END"""
JOB_COLUMNS = (
    "id, channel_name, channel_args, state, priority, attempt_at, attempts, max_attempts, "
    "lease_token, commit_deadline, job_key"
)
JOB_VALUES = f"""id, channel_name, 'tenant-' || (i % 50), ({STATE_SQL})::"char", (i % 3) - 1,
    CASE WHEN {RUNNING} OR slot BETWEEN 10 AND 69 THEN now() + interval '1 hour' ELSE at END,
    CASE WHEN {RUNNING} OR slot BETWEEN 60 AND 69 THEN 1 WHEN slot < 10 THEN 5 ELSE 0 END, 5,
    CASE WHEN {RUNNING} THEN gen_random_uuid() END,
    CASE WHEN slot = 74 AND NOT ({RUNNING}) THEN now() + interval '1 day' END,
    CASE WHEN i % 10 = 0 THEN 'key-' || i END"""
PAYLOAD_COLUMNS = "id, name, payload_json, retry_backoff, created_at, last_error"
PAYLOAD_VALUES = """id, name, json_build_object('n', i), interval '1 second', at,
    CASE WHEN slot < 10 OR slot BETWEEN 60 AND 69
        THEN 'Traceback (most recent call last):' || chr(10) || 'ValueError: job ' || i END"""
HISTORY_COLUMNS = (
    "id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key, "
    "payload_json, result, last_error, created_at, finished_at, expires_at"
)
HISTORY_VALUES = """id, name, channel_name, 'tenant-' || (i % 50),
    CASE WHEN slot < 50 THEN 'cancelled' ELSE 'completed' END, 1, 5, 0,
    CASE WHEN i % 10 = 0 THEN 'key-' || (i % 1000000) END, json_build_object('n', i),
    CASE WHEN slot >= 50 THEN json_build_object('ok', true) END,
    CASE WHEN slot < 50 THEN 'cancelled' END, at, at, now() + interval '7 days'"""


def _fill_statement(table: str, columns: str, values: str) -> str:
    return FILL_SQL.format(table=table, columns=columns, values=values.replace("%", "%%"))


def fill(dsn: str, jobs: int, log: Callable[[str], None]) -> None:
    """Writes ``jobs`` queued jobs and ``jobs // 10`` history rows, then vacuums and analyses."""
    started = time.perf_counter()
    params: dict[str, Any] = {
        "n": jobs,
        "span_ms": DAY_MS,
        "rare": RARE,
        "channels": CHANNELS,
        "names": NAMES,
    }
    with psycopg.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            _fill_statement("mq_payloads", PAYLOAD_COLUMNS, PAYLOAD_VALUES).encode(),
            {**params, "salt": "j"},
        )
        conn.execute(
            _fill_statement("mq_jobs", JOB_COLUMNS, JOB_VALUES).encode(), {**params, "salt": "j"}
        )
        conn.execute(
            _fill_statement("mq_history", HISTORY_COLUMNS, HISTORY_VALUES).encode(),
            {**params, "n": max(1, jobs // 10), "salt": "h"},
        )
        # a few ordered chains stopped by a failed head, for the overview's blocked chains
        conn.execute(
            "UPDATE mq_jobs SET ord_seq = nextval('mq_ord_seq') "
            "WHERE id IN (SELECT id FROM mq_jobs WHERE channel_name = 'rare' ORDER BY id)"
        )
        conn.execute(
            "UPDATE mq_jobs SET state = 'f', attempts = max_attempts "
            "WHERE id = (SELECT id FROM mq_jobs WHERE channel_name = 'rare' ORDER BY id LIMIT 1)"
        )
        conn.execute(
            "UPDATE mq_jobs SET state = 'b', lease_token = NULL, commit_deadline = NULL "
            "WHERE channel_name = 'rare' AND state <> 'f'"
        )
        conn.execute(
            "INSERT INTO mq_stats (bucket, channel_name, completed, retried, failed) "
            "SELECT date_trunc('minute', now()) - m * interval '1 minute', 'ch' || lpad(c::text, "
            "2, '0'), 1000, 10, 1 FROM generate_series(0, 1439) AS m, "
            "generate_series(0, %s) AS c",
            (CHANNELS - 1,),
        )
        conn.commit()
    seconds = time.perf_counter() - started
    log(f"filled {jobs:,} jobs and {jobs // 10:,} history rows in {seconds:.0f} s")
    settle(dsn)
    log("vacuumed and analysed")


# --- timing ---


def _median_ms(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    run()  # warm up: caches, prepared statements
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


async def _amedian_ms(run: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    await run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def _deep_before(conn: psycopg.Connection[Any], fraction: float) -> uuid.UUID:
    """An id ``fraction`` of the way down the queue, newest first (a deep page's ``before``)."""
    row = conn.execute(
        "SELECT id FROM mq_jobs ORDER BY id DESC OFFSET %s LIMIT 1",
        (int(fraction * _count(conn)),),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM mq_jobs").fetchone()
    assert row is not None
    return int(row[0])


def list_cases(deep: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """The ``list_jobs`` calls timed: (label, keyword arguments)."""
    return [
        ("first page (50)", {}),
        ("first page (1000)", {"limit": 1000}),
        ("deep keyset page (90% down)", {"before": deep}),
        ("state=ready", {"states": ["ready"]}),
        ("state=running", {"states": ["running"]}),
        ("state=failed", {"states": ["failed"]}),
        ("state=scheduled", {"states": ["scheduled"]}),
        ("state=retrying", {"states": ["retrying"]}),
        ("state=waiting", {"states": ["waiting"]}),
        ("state=uncommitted", {"states": ["uncommitted"]}),
        ("state=completed", {"states": ["completed"]}),
        ("state=cancelled", {"states": ["cancelled"]}),
        ("state=failed,cancelled", {"states": ["failed", "cancelled"]}),
        ("state=failed, deep page", {"states": ["failed"], "before": deep}),
        ("channel (5% of jobs)", {"channel_name": "ch07"}),
        ("channel (10 jobs)", {"channel_name": "rare"}),
        ("channel, deep page", {"channel_name": "ch07", "before": deep}),
        ("name (10% of jobs)", {"name": "job_3"}),
        ("name (10 jobs)", {"name": "rare_job"}),
        ("job_key", {"job_key": "key-500000"}),
        ("channel + state=failed", {"channel_name": "ch07", "states": ["failed"]}),
        ("channel + state=running", {"channel_name": "ch07", "states": ["running"]}),
        ("name + state=failed", {"name": "job_3", "states": ["failed"]}),
        ("channel + name", {"channel_name": "ch03", "name": "job_3"}),
        ("no match (channel)", {"channel_name": "nowhere"}),
    ]


def time_library(dsn: str, repeat: int) -> list[tuple[str, float, float]]:
    """Times the admin functions on one connection (autocommit, as a dashboard's pool)."""
    results: list[tuple[str, float, float]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        deep = _deep_before(conn, 0.9)
        for label, kwargs in list_cases(deep):
            median, worst = _median_ms(functools.partial(admin.list_jobs, conn, **kwargs), repeat)
            results.append((f"list_jobs: {label}", median, worst))
        median, worst = _median_ms(lambda: admin.queue_counts(conn), repeat)
        results.append(("queue_counts (exact)", median, worst))
        if "exact" in inspect.signature(admin.queue_counts).parameters:
            median, worst = _median_ms(
                functools.partial(admin.queue_counts, conn, exact=False),
                repeat,
            )
            results.append(("queue_counts(exact=False) (the overview's)", median, worst))
        median, worst = _median_ms(lambda: admin.blocked_chains(conn), repeat)
        results.append(("blocked_chains", median, worst))
        from datetime import UTC, datetime, timedelta

        since = datetime.now(UTC) - timedelta(hours=24)
        median, worst = _median_ms(lambda: admin.throughput(conn, since), repeat)
        results.append(("throughput (24 h)", median, worst))
    return results


async def _time_app(dsn: str, repeat: int, deep: uuid.UUID) -> list[tuple[str, float, float]]:
    from sqlxmq_py.web import create_app

    app = create_app(dsn, token="benchmark-token")
    results: list[tuple[str, float, float]] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench") as client,
    ):
        pages: list[tuple[str, str, dict[str, Any]]] = [
            ("GET / (overview page)", "/", {}),
            ("GET / (overview page, last 24 hours)", "/", {"minutes": 1440}),
            ("GET /jobs (job list page)", "/jobs", {}),
            ("GET /jobs?state=failed", "/jobs", {"state": "failed"}),
            (
                "GET /jobs?channel_name=ch07 (deep)",
                "/jobs",
                {"channel_name": "ch07", "before": str(deep)},
            ),
            ("GET /api/counts", "/api/counts", {}),
            ("GET /api/jobs", "/api/jobs", {}),
        ]
        for label, path, params in pages:

            async def get(path: str = path, params: dict[str, Any] = params) -> None:
                response = await client.get(path, params=params)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

            median, worst = await _amedian_ms(get, repeat)
            results.append((label, median, worst))
    return results


def time_app(dsn: str, repeat: int) -> list[tuple[str, float, float]]:
    """Times the dashboard's pages and JSON endpoints, in process."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        deep = _deep_before(conn, 0.9)
    return asyncio.run(_time_app(dsn, repeat, deep))


def render(results: list[tuple[str, float, float]]) -> str:
    """The figures as a plain-text table."""
    width = max(len(label) for label, _, _ in results)
    lines = [f"{'read':<{width}}  {'median ms':>9}  {'max ms':>8}", "-" * (width + 21)]
    lines += [
        f"{label:<{width}}  {median:>9.2f}  {worst:>8.2f}" for label, median, worst in results
    ]
    return "\n".join(lines)


def _prepare(dsn: str, jobs: int, log: Callable[[str], None]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    fill(dsn, jobs, log)


@contextlib.contextmanager
def _database(args: argparse.Namespace, log: Callable[[str], None]) -> Iterator[str]:
    if args.existing:
        yield args.existing
        return
    if args.keep:
        name = f"sqlxmq_bench_admin_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = make_conninfo(args.dsn, dbname=name)
        _prepare(dsn, args.jobs, log)
        yield dsn
        log(f"--keep: the database {name} is left for you to drop")
        return
    with fresh_database(args.dsn, "admin") as dsn:
        _prepare(dsn, args.jobs, log)
        yield dsn


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admin_reads", description=__doc__)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("SQLXMQ_BENCH_DSN") or DEFAULT_SERVER_DSN,
        help="a server to create the benchmark database on (the role needs CREATEDB)",
    )
    parser.add_argument("--jobs", type=int, default=1_000_000, help="queued jobs (default 1M)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure (median)")
    parser.add_argument(
        "--existing", metavar="DSN", help="time an already filled database (left as it is)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the filled database (for EXPLAIN by hand)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fills, times, prints; returns the exit status."""
    args = _parse(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )

    def log(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    info = machine_info(args.dsn)
    results: list[tuple[str, float, float]] = []
    with _database(args, log) as dsn:
        results += time_library(dsn, args.repeat)
        results += time_app(dsn, args.repeat)
    print(describe_machine(info))
    print(
        f"queue:      {args.jobs:,} queued jobs, {args.jobs // 10:,} kept; median of "
        f"{args.repeat} runs\n"
    )
    print(render(results))
    if args.json is not None:
        document = {
            "machine": info,
            "jobs": args.jobs,
            "repeat": args.repeat,
            "figures": [{"read": r, "median_ms": m, "max_ms": w} for r, m, w in results],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
