"""Shared helpers: fresh databases, worker processes, polling, memory sampling, statistics."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any, TypeVar

import psutil  # type: ignore[import-untyped,unused-ignore]
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

__all__ = [
    "DEFAULT_SERVER_DSN",
    "BenchmarkError",
    "RssSampler",
    "Settings",
    "WorkerProcess",
    "fresh_database",
    "interleaved",
    "machine_info",
    "median",
    "percentile",
    "process_cpu",
    "server_cpu",
    "settle",
    "uuid7",
    "wait_until_done",
    "worker_processes",
]

DEFAULT_SERVER_DSN = "postgresql://root@127.0.0.1:5432/postgres"
REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_LOOP = "uvloop" if find_spec("uvloop") else "asyncio"
"""The event loop of every worker (sqlxmq_py, the floor loop and the peers): uvloop when
installed, as ``sqlxmq worker`` (and pgqueuer's ``pgq run``) choose it by default."""

T = TypeVar("T")


class BenchmarkError(RuntimeError):
    """A benchmark could not be run (a worker failed, a queue never drained...)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What one invocation runs: the server, the sizes, how often each measurement repeats."""

    server_dsn: str
    quick: bool
    repeat: int
    verbose: bool

    def pick(self, default: int, quick: int) -> int:
        """``quick`` under ``--quick``, else ``default``."""
        return quick if self.quick else default

    def log(self, message: str) -> None:
        """Progress on stderr (the table goes to stdout)."""
        print(f"  {message}", file=sys.stderr, flush=True)

    def debug(self, message: str) -> None:
        """Progress detail, with ``--verbose`` only."""
        if self.verbose:
            self.log(message)


def interleaved(
    settings: Settings, labels: Sequence[str], measure: Callable[[str], T]
) -> dict[str, list[T]]:
    """Measures every label ``settings.repeat`` times, round by round, reversing the order in
    every other round so that drift (autovacuum, checkpoints, caches) favours no one."""
    results: dict[str, list[T]] = {label: [] for label in labels}
    for round_number in range(settings.repeat):
        order = labels if round_number % 2 == 0 else list(reversed(labels))
        for label in order:
            results[label].append(measure(label))
    return results


# --- databases ---


def _admin(server_dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(server_dsn, autocommit=True)


@contextlib.contextmanager
def fresh_database(server_dsn: str, label: str) -> Iterator[str]:
    """Creates an empty database for one measurement and drops it afterwards; yields its DSN."""
    name = f"sqlxmq_bench_{label}_{uuid.uuid4().hex[:8]}"
    with _admin(server_dsn) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with _admin(server_dsn) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def settle(dsn: str) -> None:
    """Puts the database in the same state before every measurement: tables vacuumed and
    analysed, and a checkpoint (skipped when the role may not take one)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def wait_until_done(
    dsn: str,
    pending_sql: str,
    *,
    timeout: float,
    workers: Sequence[WorkerProcess] = (),
    interval: float = 0.01,
) -> float:
    """Polls ``pending_sql`` (true while jobs remain) until it is false; returns the
    ``time.perf_counter()`` at which it was first seen false. Fails if a worker exits."""
    deadline = time.perf_counter() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(pending_sql).fetchone()
            now = time.perf_counter()
            if row is not None and not row[0]:
                return now
            for worker in workers:
                worker.check_alive()
            if now > deadline:
                raise BenchmarkError(f"jobs still pending after {timeout:.0f} s")
            time.sleep(interval)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) that process ``pid`` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def server_cpu(dsn: str) -> float | None:
    """CPU seconds used so far by the client backends connected to this database (other than
    the one asking); None when the server's processes cannot be seen (another host)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        ]
    try:
        return sum(process_cpu(pid) for pid in pids)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7), generated client-side like sqlxmq_py's job ids, so
    that the baseline tables' primary keys grow the same way."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


# --- statistics ---


def median(values: Sequence[float]) -> float:
    """The median (the middle of repeated measurements)."""
    return statistics.median(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (linear interpolation between order statistics)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- worker processes ---


class WorkerProcess:
    """A ``python -m benchmarks.worker`` subprocess, driven by lines on stdin and stdout.

    The worker prints ``{"event": "ready"}`` once imported and configured, starts its queue
    worker on ``go``, and stops it on ``stop`` (printing ``{"event": "stopped", ...}`` with its
    results). Its stderr goes to a temporary file, shown if it fails.
    """

    def __init__(self, system: str, dsn: str, options: Mapping[str, Any] | None = None) -> None:
        """Starts the process; use ``ready()`` to wait until it can be told to go."""
        self.label = f"{system} worker"
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - see close()
        command = [
            sys.executable,
            "-m",
            "benchmarks.worker",
            system,
            "--dsn",
            dsn,
            "--options",
            json.dumps(dict(options or {})),
        ]
        self._proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The worker's process id (for memory sampling)."""
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self._messages.put(json.loads(line))
        self._messages.put(None)

    def _send(self, command: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Waits for the message ``event`` and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkError(
                    f"{self.label}: no {event!r} within {timeout:.0f} s{self._stderr_tail()}"
                ) from None
            if message is None:
                raise BenchmarkError(
                    f"{self.label} exited (code {self._proc.wait()}) before {event!r}"
                    f"{self._stderr_tail()}"
                )
            if message.get("event") == event:
                return message

    def ready(self, timeout: float = 60.0) -> None:
        """Waits until the worker is imported and configured."""
        self.expect("ready", timeout)

    def go(self) -> None:
        """Tells the worker to start its queue worker."""
        self._send("go")

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """Stops the worker gracefully and returns its final report."""
        self._send("stop")
        report = self.expect("stopped", timeout)
        self._proc.wait(timeout)
        return report

    def check_alive(self) -> None:
        """Raises if the worker process has exited."""
        code = self._proc.poll()
        if code is not None:
            raise BenchmarkError(f"{self.label} exited (code {code}){self._stderr_tail()}")

    def kill(self) -> None:
        """Ends the process if it still runs (after a failure)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read()[-3000:]
        return f"; its stderr ends with:\n{text}" if text else ""

    def close(self) -> None:
        """Kills the process if needed and releases its pipes."""
        self.kill()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()


@contextlib.contextmanager
def worker_processes(
    system: str, dsn: str, count: int = 1, options: Mapping[str, Any] | None = None
) -> Iterator[list[WorkerProcess]]:
    """Starts ``count`` worker processes and waits until all are ready; kills what is left
    on the way out."""
    workers = [WorkerProcess(system, dsn, options) for _ in range(count)]
    try:
        for worker in workers:
            worker.ready()
        yield workers
    finally:
        for worker in workers:
            worker.close()


class RssSampler:
    """Samples the resident set size of some processes every ``interval`` seconds, from a
    thread, and keeps the peak of each."""

    def __init__(self, pids: Sequence[int], interval: float = 0.05) -> None:
        """Prepares sampling; use as a context manager."""
        self._procs = [psutil.Process(pid) for pid in pids]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peaks = [0] * len(self._procs)
        self.samples = 0

    def _sample(self) -> None:
        for i, proc in enumerate(self._procs):
            with contextlib.suppress(psutil.NoSuchProcess):
                self.peaks[i] = max(self.peaks[i], proc.memory_info().rss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


# --- the machine ---


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _library_source() -> str:
    """Where sqlxmq_py is imported from, with the git commit when it is a checkout."""
    import sqlxmq_py

    root = Path(sqlxmq_py.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "sqlxmq_py", "migrations"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(root)
    return f"{root} (git {commit}{', with uncommitted changes' if dirty else ''})"


def machine_info(server_dsn: str) -> dict[str, Any]:
    """What the figures depend on: CPUs, memory, Python and library versions, the server."""
    with _admin(server_dsn) as conn:
        settings = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            for name in (
                "server_version",
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "shared_buffers",
                "max_connections",
            )
        }
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "sqlxmq_py": _version("sqlxmq_py"),
        "sqlxmq_py_source": _library_source(),
        "load_average": os.getloadavg(),
        "pgqueuer": _version("pgqueuer"),
        "procrastinate": _version("procrastinate"),
        "pgqueuer_driver": "asyncpg" if find_spec("asyncpg") else "psycopg",
        "worker_loop": WORKER_LOOP,
        "server": {name: row[0] if row else None for name, row in settings.items()},
    }


def describe_machine(info: Mapping[str, Any]) -> str:
    """The machine block printed above the table."""
    server = info["server"]
    return "\n".join(
        [
            f"machine:    {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB",
            f"python:     {info['python']} on {info['platform']}",
            f"libraries:  sqlxmq_py {info['sqlxmq_py']}, psycopg {info['psycopg']}, "
            f"pgqueuer {info['pgqueuer']} ({info['pgqueuer_driver']}), "
            f"procrastinate {info['procrastinate']}",
            f"sqlxmq_py:  {info['sqlxmq_py_source']}",
            f"loops:      every worker on {info['worker_loop']} (as `sqlxmq worker` and "
            "`pgq run` pick by default); every library's logging at WARNING",
            "load:       {:.2f} {:.2f} {:.2f} (1, 5, 15 min) before the run".format(
                *info["load_average"]
            ),
            f"postgresql: {server['server_version']} (fsync={server['fsync']}, "
            f"synchronous_commit={server['synchronous_commit']}, "
            f"full_page_writes={server['full_page_writes']}, "
            f"shared_buffers={server['shared_buffers']})",
        ]
    )
