"""A guided tour: spawn a mix of jobs, list the queue, run it with a progress bar, report.

Run it with ``python -m sqlxmq_py.demo`` (uses ``$SQLXMQ_DSN``/``$DATABASE_URL``, else starts the
embedded PostgreSQL). It only touches jobs in channels whose names start with ``demo-``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

import psycopg
import structlog

from .builder import JobBuilder
from .current_job import BlockingCurrentJob, CurrentJob, JobInfo
from .embedded import resolve_dsn
from .job import NamedJob, job
from .migrate import migrate
from .registry import JobRegistry
from .spawn import clear, spawn_many
from .states import JobState, state_of

__all__ = ["main", "run_demo"]

DEMO_CHANNELS = ["demo-emails", "demo-images", "demo-billing", "demo-ledger", "demo-exports"]

_completed: Counter[str] = Counter()
_failed_attempts: Counter[str] = Counter()
_ledger: list[int] = []


# explicit short names (not the default sqlxmq_py.demo.<function>) keep the report readable
@job(name="send_welcome_email", channel_name="demo-emails")
async def send_welcome_email(current_job: CurrentJob) -> None:
    """An I/O-bound async job: waits a little, as if talking to a mail server."""
    await asyncio.sleep(random.uniform(0.002, 0.02))  # noqa: S311
    _completed[current_job.name] += 1


@job(name="resize_image", channel_name="demo-images")
def resize_image(current_job: BlockingCurrentJob) -> None:
    """A plain function: runs in a worker thread."""
    time.sleep(random.uniform(0.002, 0.01))  # noqa: S311
    _completed[current_job.name] += 1


@job(name="charge_card", channel_name="demo-billing", retries=3, backoff=0.2)
async def charge_card(current_job: CurrentJob) -> None:
    """Fails its first attempt now and then; the retry (after backoff) succeeds."""
    if current_job.attempt == 1 and current_job.json()["order"] % 3 == 0:
        raise ConnectionError("payment gateway timed out")
    _completed[current_job.name] += 1


@job(name="ledger_entry", channel_name="demo-ledger", ordered=True)
async def ledger_entry(current_job: CurrentJob) -> None:
    """Ordered: entries of one ledger run one at a time, in the order they were spawned."""
    _ledger.append(current_job.json())
    _completed[current_job.name] += 1


@job(name="flaky_export", channel_name="demo-exports", retries=1, backoff=0.2)
async def flaky_export(current_job: CurrentJob) -> None:
    """Always fails: after its last attempt it is kept as failed, with its error."""
    raise RuntimeError("export bucket is read-only")


JOBS: list[NamedJob[..., Any]] = [
    send_welcome_email,
    resize_image,
    charge_card,
    ledger_entry,
    flaky_export,
]


def _builders(count: int) -> list[JobBuilder]:
    builders: list[JobBuilder] = []
    for i in range(count):
        kind = i % 10
        if kind < 4:
            b = send_welcome_email.builder().set_json({"user": i}).set_channel_args(f"user-{i % 7}")
        elif kind < 7:
            b = resize_image.builder().set_json({"image": f"img-{i}.png"})
        elif kind < 9:
            b = charge_card.builder().set_json({"order": i})
        else:
            b = ledger_entry.builder().set_json(i)
        if i % 50 == 0:
            b.set_delay(1.0)  # some run a second later
        builders.append(b)
    builders.append(flaky_export.builder().set_json({"export": "nightly"}))
    return builders


def _count_failure(info: JobInfo, error: BaseException) -> None:
    _failed_attempts[info.name] += 1


def _states(conn: psycopg.Connection[Any]) -> dict[str, Counter[JobState]]:
    rows = conn.execute(
        "SELECT channel_name, state::text, attempts > 0, count(*) FROM mq_jobs "
        "WHERE channel_name = ANY(%s) GROUP BY 1, 2, 3",
        (DEMO_CHANNELS,),
    ).fetchall()
    table: dict[str, Counter[JobState]] = {}
    for channel, code, tried, n in rows:
        table.setdefault(channel, Counter())[state_of(code, int(tried))] += n
    return table


_SHOWN_STATES = (
    JobState.READY,
    JobState.SCHEDULED,
    JobState.RETRYING,
    JobState.WAITING,
    JobState.RUNNING,
    JobState.FAILED,
)


def _print_states(out: TextIO, table: dict[str, Counter[JobState]]) -> None:
    out.write(f"  {'channel':<14}" + "".join(f"{c:>11}" for c in _SHOWN_STATES) + "\n")
    for channel in DEMO_CHANNELS:
        counts = table.get(channel, Counter())
        out.write(f"  {channel:<14}" + "".join(f"{counts[k]:>11}" for k in _SHOWN_STATES) + "\n")


def _bar(done: int, total: int, failed: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} finished, {failed} failed"


async def run_demo(dsn: str | None = None, count: int = 300, out: TextIO = sys.stdout) -> int:
    """Runs the tour; returns the number of jobs that failed for good (1: the flaky export)."""
    dsn = resolve_dsn(dsn)
    _completed.clear()
    _failed_attempts.clear()
    _ledger.clear()
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        clear(conn, DEMO_CHANNELS)
        with conn.transaction():
            ids = spawn_many(conn, _builders(count))
        total = len(ids)
        out.write(f"Spawned {total} jobs in one transaction. The queue now:\n")
        _print_states(out, _states(conn))
        out.write("\nRunning them with one runner (concurrency 10-20):\n")
        started = time.monotonic()
        registry = JobRegistry(JOBS).set_error_handler(_count_failure)
        async with await registry.runner(dsn).set_concurrency(10, 20).run():
            while True:
                table = _states(conn)
                failed = sum(c[JobState.FAILED] for c in table.values())
                remaining = sum(sum(c.values()) for c in table.values()) - failed
                if out.isatty() or remaining == 0:
                    out.write("\r  " + _bar(total - remaining, total, failed))
                    out.flush()
                if remaining == 0:
                    break
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        out.write(f"\n\nDone in {elapsed:.1f} s ({total / elapsed:.0f} jobs/s).\n")
        for named in JOBS:
            retried = _failed_attempts[named.name]
            out.write(
                f"  {named.name:<20} completed {_completed[named.name]:>4}"
                f"   failed attempts {retried:>3}\n"
            )
        in_order = _ledger == sorted(_ledger)
        out.write(f"  ledger entries ran in spawn order: {'yes' if in_order else 'NO'}\n")
        failures = conn.execute(
            "SELECT p.name, j.attempts, split_part(p.last_error, E'\\n', 1) FROM mq_jobs j "
            "JOIN mq_payloads p USING (id) WHERE j.state = 'f' AND j.channel_name = ANY(%s)",
            (DEMO_CHANNELS,),
        ).fetchall()
        for name, attempts, error in failures:
            out.write(f"  failed for good: {name} after {attempts} attempts: {error}\n")
        out.write("Failed jobs stay in the queue, with their error, until retried or purged.\n")
        return len(failures)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sqlxmq_py.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", help="PostgreSQL connection string (default: embedded)")
    parser.add_argument("--jobs", type=int, default=300, help="how many jobs to spawn")
    args = parser.parse_args(argv)
    # an application entry point, not library code: quiet the per-job log lines
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    failed = asyncio.run(run_demo(args.dsn, args.jobs))
    return 0 if failed == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
