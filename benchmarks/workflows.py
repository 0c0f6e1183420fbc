"""Workflows: ``python -m benchmarks.workflows [--dsn SERVER_DSN] [--steps 2000]``.

In a fresh database with empty statistics (the worst case the settling statements must hold
their plans in), times spawning a workflow of ``--steps`` independent steps and a join after
all of them, then settling every step with the pull API, one step per transaction (fetch 50,
complete each and commit): first ungrouped, then all in one group limited to 50 running at
once. Beside them, the same number of plain jobs spawned and completed the same way (the floor:
what a step costs more is its workflow's settlement). Figures in milliseconds; nothing here is
a test: they depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import psycopg

from sqlxmq_py import BlockingCurrentJob, job, migrate, spawn_many
from sqlxmq_py.pull import complete, fetch
from sqlxmq_py.workflow import Workflow

from ._support import DEFAULT_SERVER_DSN, fresh_database


@job(retries=0)
def bench_step(current_job: BlockingCurrentJob) -> None:
    """Never run: the benchmark settles steps with the pull API."""


def _drain(conn: psycopg.Connection[Any], count: int) -> float:
    started = time.perf_counter()
    done = 0
    while done < count:
        got = fetch(conn, ["bench"], 50)
        conn.commit()
        for fetched in got:
            complete(conn, fetched)
            conn.commit()
            done += 1
    return time.perf_counter() - started


def _workflow(steps: int, limit: int | None) -> Workflow:
    wf = Workflow("bench")
    for i in range(steps):
        group = None if limit is None else "g"
        wf.add(f"s{i}", bench_step.builder().set_channel_name("bench"), group=group)
    if limit is not None:
        wf.limit("g", limit)
    wf.add("join", bench_step.builder().set_channel_name("bench"), after=wf_names(steps))
    return wf


def wf_names(steps: int) -> list[str]:
    """The names of the independent steps."""
    return [f"s{i}" for i in range(steps)]


def run(dsn: str, steps: int) -> list[tuple[str, float, float]]:
    """(case, spawn ms, ms per completion) for plain jobs and both workflows."""
    rows = []
    with psycopg.connect(dsn) as conn:
        migrate(conn)
        conn.commit()
        started = time.perf_counter()
        spawn_many(
            conn,
            [bench_step.builder().set_channel_name("bench").set_retain_for(3600)] * (steps + 1),
        )
        conn.commit()
        spawned = time.perf_counter() - started
        rows.append((f"{steps + 1} plain jobs", spawned * 1000, _drain(conn, steps + 1)))
        for label, limit in (("no limit", None), ("group limited to 50", 50)):
            started = time.perf_counter()
            _workflow(steps, limit).spawn(conn)
            conn.commit()
            spawned = time.perf_counter() - started
            elapsed = _drain(conn, steps + 1)
            rows.append((f"{steps} steps + a join, {label}", spawned * 1000, elapsed))
    return [(case, spawn_ms, total / (steps + 1) * 1000) for case, spawn_ms, total in rows]


def main(argv: list[str] | None = None) -> int:
    """Runs the measurement in a fresh database and prints a table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workflows")
    parser.add_argument("--dsn", default=os.environ.get("SQLXMQ_BENCH_DSN", DEFAULT_SERVER_DSN))
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    with fresh_database(args.dsn, "workflows") as dsn:
        results = run(dsn, args.steps)
    print(f"{'case':<40} {'spawn ms':>10} {'ms per completion':>18}")
    for case, spawn_ms, per in results:
        print(f"{case:<40} {spawn_ms:>10.0f} {per:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
