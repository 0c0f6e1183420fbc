"""Jobs for the ``sqlxmq worker`` processes of the adversarial tests:
``sqlxmq worker tests.adversarial.app:registry``.

``exits`` and ``exits_thread`` try to end the process (``sys.exit()``, ``SystemExit``,
``KeyboardInterrupt``, as their payload says); ``quick`` completes; ``stuck_thread`` records
each start with the worker's pid and whether another worker that started it is still alive,
then (the first time it starts) never returns.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import psycopg

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, job

CHANNEL = "adversarial"


def misbehave(how: str) -> NoReturn:
    """Raises what a job may raise to end its process."""
    if how == "sys.exit":
        sys.exit(3)
    if how == "SystemExit":
        raise SystemExit("the job wants the process gone")
    if how == "KeyboardInterrupt":
        raise KeyboardInterrupt("the job pressed Ctrl-C")
    raise AssertionError(f"unknown misbehaviour {how!r}")


@job(channel_name=CHANNEL, retries=0)
async def exits(current_job: CurrentJob) -> None:
    """An async job that tries to end the process."""
    misbehave(current_job.json()["how"])


@job(channel_name=CHANNEL, retries=0)
def exits_thread(current_job: BlockingCurrentJob) -> None:
    """A thread job that tries to end the process."""
    misbehave(current_job.json()["how"])


@job(channel_name=CHANNEL)
async def quick(current_job: CurrentJob) -> None:
    """Completes at once."""


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


_never = threading.Event()


@job(channel_name=CHANNEL, lease=2, retries=3, backoff=0)
def stuck_thread(current_job: BlockingCurrentJob) -> None:
    """Records its start in ``starts`` (job id, attempt, pid, whether a process that started it
    before is still alive, database time); its first start never returns, later ones do."""
    me = os.getpid()
    with psycopg.connect(current_job.json()["dsn"], autocommit=True) as conn:
        rows: list[Any] = conn.execute(
            "SELECT pid FROM starts WHERE job_id = %s", (current_job.id,)
        ).fetchall()
        overlap = any(alive(pid) for (pid,) in rows if pid != me)
        conn.execute(
            "INSERT INTO starts (job_id, attempt, pid, overlap, started_at) "
            "VALUES (%s, %s, %s, %s, clock_timestamp())",
            (current_job.id, current_job.attempt, me, overlap),
        )
    if not rows:
        _never.wait()


registry = JobRegistry([exits, exits_thread, quick, stuck_thread])
