"""The runner's worker processes, for jobs declared with ``isolation="process"``: CPU-bound work
runs on every core, a timeout really stops the job (its process is killed), and a process that
dies (a crash, a signal, the out-of-memory killer) fails the attempt instead of the runner.

Processes are started on demand (``spawn``: a fresh interpreter, never a fork of the runner's
threads and connections), up to the configured number, and each is reused for further jobs until
it has run ``max_jobs`` of them or its peak memory passes ``max_memory``: then it is retired and
the next job starts a fresh one. One job runs in a process at a time; the exchange with it (send
the job, wait for its answer) runs in a thread of the pool's own, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..errors import JobProcessDiedError, JobTimeoutError
from ..process_job import ProcessJob
from ._process_child import serve

__all__ = ["DEFAULT_PROCESS_LIMITS", "ProcessLimits", "ProcessPool"]


@dataclass(frozen=True)
class ProcessLimits:
    """How many worker processes a runner keeps, and when one is replaced."""

    processes: int
    max_jobs: int
    """Jobs one process runs before it is replaced."""
    max_memory: int | None
    """Peak resident bytes above which a process is replaced after its job (None: no bound)."""


DEFAULT_PROCESS_LIMITS = ProcessLimits(
    processes=os.cpu_count() or 1, max_jobs=1000, max_memory=None
)
"""One process per core, each replaced after 1,000 jobs, with no memory bound."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (as its ``__cause__``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Worker:
    __slots__ = ("conn", "jobs", "process")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.jobs = 0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


def _exchange(conn: Connection, request: object) -> Any:
    conn.send(request)
    return conn.recv()


class ProcessPool:
    """Runs process-isolated jobs; create it on the runner's loop, close it when the runner
    stops."""

    def __init__(self, limits: ProcessLimits) -> None:
        self._limits = limits
        self._context = multiprocessing.get_context("spawn")
        self._slots = asyncio.Semaphore(limits.processes)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._threads = ThreadPoolExecutor(
            max_workers=limits.processes, thread_name_prefix="sqlxmq-process"
        )

    async def run(
        self, module: str, qualname: str, job: ProcessJob[Any], timeout: float | None
    ) -> Any:
        """Runs the job function ``module.qualname`` on ``job`` in a worker process and returns
        what it returned, or raises what it raised.

        Raises:
            JobTimeoutError: it ran past ``timeout`` seconds; its process was killed.
            JobProcessDiedError: its process died before answering.
        """
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._start()
            self._busy.add(worker)
            keep = False
            try:
                reply = await self._call(worker, (module, qualname, job), timeout, job)
                worker.jobs += 1
                keep = worker.jobs < self._limits.max_jobs and (
                    self._limits.max_memory is None or reply[-1] <= self._limits.max_memory
                )
            finally:
                self._busy.discard(worker)
                if keep:
                    self._idle.append(worker)
                else:
                    self._retire(worker)
        if reply[0] == "returned":
            return reply[1]
        _, exc, path, text, _ = reply
        if exc is None:
            exc = RuntimeError(f"{path} (raised in the job's process, cannot be pickled)")
        exc.__cause__ = RemoteTraceback(text)
        raise exc

    async def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=serve, args=(theirs,), name="sqlxmq-job-process", daemon=True
        )
        await asyncio.get_running_loop().run_in_executor(self._threads, process.start)
        theirs.close()
        return _Worker(process, ours)

    async def _call(
        self, worker: _Worker, request: object, timeout: float | None, job: ProcessJob[Any]
    ) -> Any:
        loop = asyncio.get_running_loop()
        exchange = loop.run_in_executor(self._threads, _exchange, worker.conn, request)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(exchange)
        except TimeoutError:
            await self._end(worker, exchange)
            raise JobTimeoutError(
                f"job {job.name!r} ({job.id}) ran longer than its timeout ({timeout:g} s): its "
                "process was killed"
            ) from None
        except asyncio.CancelledError:
            # stopped by the runner (or its cancel request): the process is the job, so it goes
            await self._end(worker, exchange)
            raise
        except (EOFError, OSError):
            how = await self._how(worker)
            raise JobProcessDiedError(
                f"the process running job {job.name!r} ({job.id}) died: {how}"
            ) from None

    async def _end(self, worker: _Worker, exchange: asyncio.Future[Any]) -> None:
        """Kills the worker and waits until its exchange thread has let go."""
        worker.kill()
        await asyncio.wait([exchange])
        if not exchange.cancelled():
            exchange.exception()  # retrieved: it is the EOF the kill caused

    async def _how(self, worker: _Worker) -> str:
        # reaped in the pool's threads: the event loop never waits for a dying process
        await asyncio.get_running_loop().run_in_executor(self._threads, worker.process.join, 1)
        code = worker.process.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (the kernel's out-of-memory killer sends it)" if name == "SIGKILL" else ""
            return f"killed by {name}{hint}"
        return f"it exited with code {code}"

    def _retire(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            try:
                worker.conn.send(None)
            except OSError:
                worker.kill()
                return
        worker.conn.close()

    def close(self) -> None:
        """Stops every worker process (a job still running in one is killed with it)."""
        for worker in [*self._idle, *self._busy]:
            worker.kill()
        for worker in [*self._idle, *self._busy]:
            worker.process.join(1)
        self._idle.clear()
        self._busy.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
