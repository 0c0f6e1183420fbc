"""``sqlxmq worker MODULE:REGISTRY``: a runner process, with graceful shutdown on signals and
optional Prometheus metrics."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from .._aio import within
from .._logging import redact_conninfo
from ..current_job import JobInfo
from ..hooks import JobOutcome, RunnerHooks
from ..registry import JobRegistry
from ..runner import JobRunnerHandle
from ..testing._burst import BurstCounts, stop_burst, until_drained
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Commands,
    Context,
    add_command,
    port_number,
    positive_int,
)
from ._registry import load_registry

__all__ = ["load_registry", "register"]

FORCED_STOP_GRACE = 10.0
"""After a second signal: how long cancelling jobs and handing their leases back may take."""

_log: Any = structlog.get_logger("sqlxmq_py.cli")

EPILOG = """\
shutdown:
  The first SIGTERM or SIGINT (Ctrl-C) stops leasing and lets running jobs finish
  for up to --shutdown-timeout seconds; jobs still running then are cancelled and
  their leases handed back without using up an attempt. A second signal does that
  at once.

burst (--burst):
  The worker stops by itself once no job of its channels is due (ready, made
  ready by its time, or parked under a name the registry knows) and none is
  running, in this worker or another. Jobs scheduled for later (delayed jobs,
  retries waiting for their backoff) are left for another run. The exit code
  says whether every attempt the worker ran completed its job: 0 if so (or if
  there was nothing to run); 1 if any did not: it raised or timed out (retried
  or failed for good), was cancelled, lost its lease, returned without
  completing (auto_complete=False), or named a job the registry does not know
  (parked, left for a worker that knows it).

exit codes:
  0    stopped after a signal (running jobs finished or were handed back);
       --burst: the queue is drained and every attempt completed
  1    error: the runner could not start (database unreachable, schema missing, ...);
       --burst: the queue is drained and some attempt did not complete
  2    usage error: bad option, or the registry cannot be imported
  130  stopped at once by a second signal, SIGINT last (128 + 2)
  143  stopped at once by a second signal, SIGTERM last (128 + 15)

examples:
  sqlxmq worker myapp.jobs:registry --concurrency 8 16 --channel emails --metrics-port 9464
  sqlxmq worker myapp.jobs:registry --burst   # in CI: run what is due, exit 1 if any failed
"""


class _JobLines(RunnerHooks):
    """The worker's one line per completed job at info (the library logs them at debug; its
    failures, at warning or error, need no help)."""

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        if outcome == "completed":
            _log.info(
                f"job_{outcome}",
                job_id=str(job.id),
                job_name=job.name,
                channel_name=job.channel_name,
                attempt=job.attempt,
                duration_s=duration_s,
            )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return value


def register(commands: Commands) -> None:
    """Adds the ``worker`` command."""
    parser = add_command(
        commands,
        "worker",
        summary="run the jobs of a JobRegistry until stopped",
        description=(
            "Runs a job runner for the JobRegistry named MODULE:REGISTRY (imported from the\n"
            "current directory or the Python path), until SIGTERM or SIGINT. REGISTRY may\n"
            "also name a function that returns the registry."
        ),
        epilog=EPILOG,
    )
    parser.add_argument(
        "registry",
        metavar="MODULE:REGISTRY",
        help="where the JobRegistry is, e.g. myapp.jobs:registry",
    )
    parser.add_argument(
        "--concurrency",
        nargs=2,
        type=positive_int,
        metavar=("MIN", "MAX"),
        help="lease more jobs whenever fewer than MIN run, up to MAX at once (default 16 32)",
    )
    parser.add_argument(
        "--channel",
        action="append",
        metavar="NAME",
        help="run only jobs of this channel (repeatable; default: every channel)",
    )
    parser.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port, "
        "logged at start); needs sqlxmq_py[metrics]",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="after the first signal, how long running jobs may take to finish (default 30)",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop (default auto: uvloop when installed, pip install "
        "'sqlxmq_py[uvloop]'; it lowers spawn-to-start latency; else asyncio's)",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="stop once no job of the worker's channels is due and none is running; exit 0 if "
        "every attempt completed its job, 1 if any did not (see burst below)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log level (default info: one line per job; warning for busy queues)",
    )
    parser.set_defaults(handler=run_worker)


def run_worker(ctx: Context, args: argparse.Namespace) -> int:
    """Runs the worker until it is stopped; returns the exit code."""
    registry = load_registry(args.registry)
    conninfo = ctx.conninfo()
    code = event_loop_runner(args.loop)(_work(args, registry, conninfo))
    _exit_now_if_job_threads_remain(code)
    return code


def event_loop_runner(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """``asyncio.run`` or ``uvloop.run`` for ``--loop`` (auto: uvloop when importable).

    Raises:
        CliError: (usage) ``uvloop`` was asked for and is not installed.
    """
    if choice == "asyncio":
        return asyncio.run
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if choice == "uvloop":
            raise CliError(
                f"--loop uvloop: uvloop is not installed (pip install 'sqlxmq_py[uvloop]'): {exc}",
                EXIT_USAGE,
            ) from exc
        return asyncio.run
    run: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    return run


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[int]
) -> Callable[[], None]:
    """Puts SIGTERM and SIGINT on ``queue``; returns the function that undoes it."""
    sigs = (signal.SIGTERM, signal.SIGINT)
    try:
        for sig in sigs:
            loop.add_signal_handler(sig, queue.put_nowait, int(sig))
    except NotImplementedError:  # Windows: no loop signal handlers
        previous = {sig: signal.getsignal(sig) for sig in sigs}

        def handler(signum: int, _frame: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, signum)

        for sig in sigs:
            signal.signal(sig, handler)

        def restore_plain() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore_plain

    def restore() -> None:
        for sig in sigs:
            loop.remove_signal_handler(sig)

    return restore


def _start_metrics(conninfo: str, port: int) -> tuple[Any, str, RunnerHooks]:
    """Starts the metrics HTTP server; returns it, its URL and the hooks that feed it."""
    try:
        from prometheus_client import start_http_server

        from ..metrics import PrometheusHooks, metrics_registry
    except ImportError as exc:
        raise CliError(
            f"--metrics-port needs prometheus_client: pip install 'sqlxmq_py[metrics]' ({exc})",
            EXIT_USAGE,
        ) from exc
    hooks = PrometheusHooks()  # the process-wide registry: the jobs' own metrics show too
    try:
        server, _thread = start_http_server(
            port, addr="127.0.0.1", registry=metrics_registry(conninfo)
        )
    except OSError as exc:
        raise CliError(f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    return server, f"http://127.0.0.1:{server.server_port}/metrics", hooks


async def _work(args: argparse.Namespace, registry: JobRegistry, conninfo: str) -> int:
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[int] = asyncio.Queue()
    restore_signals = _install_signal_handlers(loop, signals)
    server: Any = None
    try:
        hooks: list[RunnerHooks] = []
        burst = BurstCounts() if args.burst else None
        if burst is not None:
            hooks.append(burst)
        if args.log_level == "info" and not args.debug:
            hooks.append(_JobLines())
        metrics_url = None
        if args.metrics_port is not None:
            server, metrics_url, prometheus_hooks = _start_metrics(conninfo, args.metrics_port)
            hooks.append(prometheus_hooks)
        options = registry.runner(conninfo).set_hooks(*hooks)
        if args.concurrency:
            options.set_concurrency(*args.concurrency)
        if args.channel:
            options.set_channel_names(args.channel)
        concurrency = options.config()
        starting = asyncio.ensure_future(options.run())
        first_signal = asyncio.ensure_future(signals.get())
        await asyncio.wait({starting, first_signal}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # interrupted while connecting
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return 128 + first_signal.result()
        handle = starting.result()
        _log.info(
            "worker_started",
            registry=args.registry,
            jobs=sorted(registry.names),
            channels=args.channel or "all",
            concurrency=f"{concurrency.min_concurrency}-{concurrency.max_concurrency}",
            database=redact_conninfo(conninfo),
            metrics_url=metrics_url,
            loop=type(loop).__module__.partition(".")[0],  # "asyncio" or "uvloop"
            pid=os.getpid(),
            burst=args.burst,
        )
        if burst is not None and await until_drained(
            handle, burst, conninfo, args.channel, sorted(registry.names), first_signal
        ):
            first_signal.cancel()
            return await stop_burst(handle, burst, args.shutdown_timeout)
        return await _wait_and_stop(handle, signals, first_signal, args.shutdown_timeout)
    finally:
        restore_signals()
        if server is not None:
            server.shutdown()
            server.server_close()


async def _wait_and_stop(
    handle: JobRunnerHandle,
    signals: asyncio.Queue[int],
    first_signal: asyncio.Future[int],
    shutdown_timeout: float,
) -> int:
    first = await first_signal
    _log.info(
        "worker_stopping",
        signal=signal.Signals(first).name,
        running_jobs=handle.num_running_jobs(),
        timeout_s=shutdown_timeout,
        detail="no new jobs; running jobs may finish; send the signal again to stop at once",
    )
    stopping = asyncio.ensure_future(handle.stop(timeout=shutdown_timeout))
    second_signal = asyncio.ensure_future(signals.get())
    await asyncio.wait({stopping, second_signal}, return_when=asyncio.FIRST_COMPLETED)
    if stopping.done():
        second_signal.cancel()
        stopping.result()
        _log.info("worker_stopped", exit_code=EXIT_OK)
        return EXIT_OK
    second = second_signal.result()
    code = 128 + second
    _log.warning(
        "worker_stopping_now",
        signal=signal.Signals(second).name,
        running_jobs=handle.num_running_jobs(),
        detail="cancelling running jobs and handing their leases back",
    )
    try:
        await within(_cancel_and_finish(handle, stopping), FORCED_STOP_GRACE)
    except TimeoutError:
        _log.error("worker_stop_timed_out", timeout_s=FORCED_STOP_GRACE, exit_code=code)
        _exit_now(code)
    _log.info("worker_stopped", exit_code=code)
    return code


async def _cancel_and_finish(handle: JobRunnerHandle, stopping: asyncio.Future[None]) -> None:
    # the running jobs are cancelled while stop() waits for them; stop() then hands their
    # leases back
    await handle.cancel_running_jobs()
    await stopping


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_now_if_job_threads_remain(code: int) -> None:
    """Plain ``def`` jobs cannot be interrupted: once their leases are handed back, exit without
    waiting for their threads (the interpreter would join them at exit)."""
    threads = [t for t in threading.enumerate() if t.name.startswith("sqlxmq-job") and t.is_alive()]
    deadline = time.monotonic() + 1.0  # idle pool threads end as soon as they see the shutdown
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = [t for t in threads if t.is_alive()]
    if busy:
        _log.warning("worker_exiting_with_running_job_threads", threads=len(busy), exit_code=code)
        _exit_now(code)
