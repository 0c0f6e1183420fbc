"""Jobs declared with ``isolation="process"``, at module level so that their worker processes
can import them (tests/runner/test_process_isolation.py runs them)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlxmq_py import ProcessJob, job


@dataclass(frozen=True)
class Square:
    """The typed payload of :func:`area`."""

    side: int


@job(isolation="process", retries=0)
def whoami(current_job: ProcessJob) -> dict[str, object]:
    """Answers with the process it ran in and what it saw of its lease."""
    return {
        "pid": os.getpid(),
        "payload": current_job.json(),
        "attempt": current_job.attempt,
        "channel": current_job.channel_name,
        "headers": current_job.headers,
    }


@job(isolation="process", retries=0)
def area(current_job: ProcessJob[Square]) -> int:
    """A typed payload, decoded in the worker process."""
    return current_job.payload.side**2


@job(isolation="process", retries=0, timeout=0.5)
def spin(current_job: ProcessJob) -> None:
    """CPU-bound and endless: only its timeout ends it (it signals it started in a file)."""
    Path(current_job.json()["started"]).write_text(str(os.getpid()))
    while True:
        pass


@job(isolation="process", retries=0)
def crash(current_job: ProcessJob) -> None:
    """Its process dies as the kernel's out-of-memory killer would end it."""
    os.kill(os.getpid(), signal.SIGKILL)


@job(isolation="process", retries=0)
def leave(current_job: ProcessJob) -> None:
    """Exits as a job that calls ``sys.exit()`` does."""
    sys.exit(3)


class Unpicklable(Exception):
    """An exception that cannot cross back to the runner (it holds a lock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@job(isolation="process", retries=0)
def unpicklable(current_job: ProcessJob) -> None:
    """Raises an exception the runner cannot unpickle."""
    raise Unpicklable("held a lock")


@job(isolation="process", retries=0)
def bad_result(current_job: ProcessJob) -> object:
    """Returns what cannot be pickled."""
    return threading.Lock()


@job(isolation="process", retries=0)
def hog(current_job: ProcessJob) -> int:
    """Takes 64 MiB for a moment; answers with its process."""
    block = bytearray(64 * 1024 * 1024)
    block[-1] = 1
    return os.getpid()


@job(isolation="process", retries=0)
def sleeper(current_job: ProcessJob) -> None:
    """Runs until its process is killed (it signals it started in a file)."""
    Path(current_job.json()["started"]).write_text(str(os.getpid()))
    time.sleep(3600)


@job(isolation="process", retries=0)
def burn(current_job: ProcessJob) -> int:
    """CPU-bound work of a given size (the benchmark's job)."""
    total = 0
    for i in range(current_job.json()["n"]):
        total += i * i % 7
    return total
