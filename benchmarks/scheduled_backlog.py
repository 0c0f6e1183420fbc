"""A scheduled backlog coming due: ``python -m benchmarks.scheduled_backlog [--jobs 500000]``.

Fills a fresh database with ``--jobs`` no-op jobs scheduled uniformly over ``--spread``
seconds (starting ``--lead`` seconds after the fill), starts one runner process at the
library's default settings, and while the backlog comes due spawns an immediate latency probe
every 10 ms, in a channel of its own. It reports the rate at which the scheduled jobs
completed, the probes' spawn-to-start latency (p50, p99, max), and, with ``track_functions``
on, the database time spent in each of the runner's functions (``pg_stat_user_functions``):
promotion apart from leasing should cost in proportion to what comes due.

Issue 9.23 measured, before the change: 500,000 jobs over 120 s made the runner spend 83 s of
database time promoting against 10 s leasing; completions fell to 1,000-1,400/s, and the
probes' latency went from 3 ms to 33-63 ms (p99 200 ms). The same script runs against older
versions (it uses only what they have), which is how the figures before a change are taken.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql

from ._support import DEFAULT_SERVER_DSN, describe_machine, fresh_database, machine_info, settle
from .systems.sqlxmq_system import SYSTEM, noop, probe

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent

PROBE_CHANNEL = "probes"
"""The probes' channel: a group of their own, so that the runner's fairness gives them a turn
however deep the backlog's group is, and their latency shows what leasing costs while the
backlog comes due, not how long the backlog's queue is."""

NOOP: str = getattr(noop, "name", "noop")
"""The name the worker knows the no-op job by (qualified since names became module paths;
plain ``noop`` in versions before that)."""

FILL_SQL = """
WITH ids AS (
    INSERT INTO mq_payloads (id, name, retry_backoff)
    SELECT mq_uuid7(), %(name)s, interval '1 second' FROM generate_series(1, %(n)s)
    RETURNING id
)
INSERT INTO mq_jobs (id, channel_name, channel_args, state, attempt_at, max_attempts)
SELECT id, '', '', 's',
    now() + make_interval(secs => %(lead)s + %(spread)s * random()), 5
FROM ids
"""


def _worker(dsn: str) -> subprocess.Popen[str]:
    options = {"concurrency": [16, 32], "loop": "asyncio"}  # the library's defaults
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.worker",
            "sqlxmq",
            "--dsn",
            dsn,
            "--options",
            json.dumps(options),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["event"] == "ready"
    return proc


def _tell(proc: subprocess.Popen[str], command: str) -> dict[str, Any]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


def _remaining(conn: psycopg.Connection[Any]) -> int:
    """Scheduled jobs not yet completed (the probes are not counted)."""
    row = conn.execute("SELECT count(*) FROM mq_payloads WHERE name = %s", (NOOP,)).fetchone()
    return int(row[0]) if row else 0


def measure(server: str, jobs: int, spread: float, lead: float) -> dict[str, Any]:
    """One run; returns its figures."""
    with fresh_database(server, "backlog") as dsn:
        SYSTEM.prepare(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            name = sql.Identifier(conn.info.dbname)
            conn.execute(sql.SQL("ALTER DATABASE {} SET track_functions = 'pl'").format(name))
        with psycopg.connect(dsn, autocommit=True) as conn:
            filled = time.monotonic()
            conn.execute(FILL_SQL, {"name": NOOP, "n": jobs, "lead": lead, "spread": spread})
        settle(dsn)
        worker = _worker(dsn)
        _tell(worker, "go")
        due_from = filled + lead
        spawned: dict[int, float] = {}
        done_at = None
        with psycopg.connect(dsn) as producer, psycopg.connect(dsn, autocommit=True) as watch:
            seq = 0
            next_check = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 1.0
                    if _remaining(watch) == 0 and now > due_from + spread:
                        done_at = now
                        break
                probing = probe.builder().set_channel_name(PROBE_CHANNEL)
                probing.set_json({"seq": seq}).spawn(producer)
                producer.commit()
                if due_from <= now <= due_from + spread:
                    spawned[seq] = time.time()
                seq += 1
                time.sleep(0.01)
            functions = watch.execute(
                "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions "
                "WHERE funcname LIKE 'mq\\_%%' ORDER BY total_time DESC"
            ).fetchall()
        starts = {int(k): v for k, v in _tell(worker, "stop")["starts"].items()}
        worker.wait()
    latencies = sorted((starts[s] - t) * 1000 for s, t in spawned.items() if s in starts)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    elapsed = (done_at or time.monotonic()) - due_from
    return {
        "jobs": jobs,
        "spread_s": spread,
        "completion_rate": round(jobs / elapsed),
        "drained_after_s": round(elapsed, 1),
        "probe_latency_ms": {
            "p50": round(q[49], 2),
            "p99": round(q[98], 2),
            "max": round(latencies[-1], 2) if latencies else None,
            "probes": len(latencies),
        },
        "function_time_s": {
            name: {"calls": calls, "total": round(total / 1000, 2), "self": round(own / 1000, 2)}
            for name, calls, total, own in functions
        },
    }


def main() -> None:
    """Parses the command line, runs once and prints the figures (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_SERVER_DSN, help="a server to create it on")
    parser.add_argument("--jobs", type=int, default=500_000)
    parser.add_argument("--spread", type=float, default=120.0, help="seconds they come due over")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds before the first is due")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(describe_machine(machine_info(args.dsn)))
    print(json.dumps(measure(args.dsn, args.jobs, args.spread, args.lead), indent=2))


if __name__ == "__main__":
    main()
