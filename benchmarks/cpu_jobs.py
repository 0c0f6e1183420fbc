"""The CPU-bound job of ``benchmarks.isolation``, once as a thread job and once declared with
``isolation="process"`` (module level, so that worker processes can import it)."""

from __future__ import annotations

from sqlxmq_py import BlockingCurrentJob, ProcessJob, job

__all__ = ["burn", "burn_in_process", "burn_in_thread"]


def burn(n: int) -> int:
    """Pure-Python arithmetic: it holds the GIL for all of its time."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@job(name="bench.burn_in_thread", retries=0, retain_for=600)
def burn_in_thread(current_job: BlockingCurrentJob) -> int:
    return burn(current_job.json()["n"])


@job(name="bench.burn_in_process", retries=0, retain_for=600, isolation="process")
def burn_in_process(current_job: ProcessJob) -> int:
    return burn(current_job.json()["n"])
